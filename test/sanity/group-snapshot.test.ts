// GroupController: volume group snapshots, created, read and deleted as one.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { GroupControllerServiceCapability_RPC_Type as GroupCap } from "../../src/gen/csi";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess, DIR_VOLUMES } from "./harness";
import type { VolumeContentSource } from "../../src/gen/csi";
import { COPY_CASES, fsckImage, PodVolume, thawUnder, Writer, type CopyCase } from "./copy-cases";
import { createVolume, volumeDir } from "./snapshot-helpers";
import { MEMORY, NFS_LOCAL } from "./backends";
import { encodePart } from "../../src/backends/nfs/volume-id";
import { fileContent, fileName } from "./writer";

describe("Volume group snapshots", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  const gc = () => d.client.groupController;

  /** Two volumes with a file each. */
  async function twoVolumes(): Promise<string[]> {
    const ids = [await createVolume(d), await createVolume(d)];
    for (const id of ids) await fsp.writeFile(path.join(volumeDir(d, id), "who"), id);
    return ids;
  }

  it("GroupControllerGetCapabilities offers CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT", async () => {
    const caps = (await gc().groupControllerGetCapabilities({})).capabilities!.map((c) => c.rpc!.type);
    assert.deepEqual(caps, [GroupCap.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT]);
  });

  it("CreateVolumeGroupSnapshot cuts one ready member per volume, each carrying the group ID", async () => {
    const volumes = await twoVolumes();
    const g = (await gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes })).groupSnapshot!;
    assert.match(g.groupSnapshotId!, /^group-[0-9a-f]{32}$/);
    assert.equal(g.readyToUse, true);
    assert.ok(g.creationTime!.seconds! > 0);
    assert.deepEqual(g.snapshots!.map((s) => s.sourceVolumeId), volumes);
    for (const s of g.snapshots!) {
      assert.equal(s.groupSnapshotId, g.groupSnapshotId);
      assert.equal(s.readyToUse, true);
      const got = (await d.client.controller.getSnapshot({ snapshotId: s.snapshotId })).snapshot!;
      assert.equal(got.groupSnapshotId, g.groupSnapshotId);
    }
    const listed = (await d.client.controller.listSnapshots({ sourceVolumeId: volumes[0] })).entries!.map((e) => e.snapshot!);
    assert.deepEqual(listed.map((s) => [s.snapshotId, s.groupSnapshotId]), [[g.snapshots![0]!.snapshotId, g.groupSnapshotId]]);
  });

  it("every member reports the group's creation_time: they were all taken at that one point in time", async () => {
    const volumes = [...(await twoVolumes()), ...(await twoVolumes())];
    const name = uniqueName("group");
    const g = (await gc().createVolumeGroupSnapshot({ name, sourceVolumeIds: volumes })).groupSnapshot!;
    for (const s of g.snapshots!) assert.deepEqual(s.creationTime, g.creationTime, `member ${s.snapshotId}`);
    for (const s of g.snapshots!) {
      const got = (await d.client.controller.getSnapshot({ snapshotId: s.snapshotId })).snapshot!;
      assert.deepEqual(got.creationTime, g.creationTime, `member ${s.snapshotId} as GetSnapshot reads it`);
    }
  });

  it("a member can be restored like any snapshot", async () => {
    const volumes = await twoVolumes();
    const g = (await gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes })).groupSnapshot!;
    const member = g.snapshots![1]!;
    const res = await d.client.controller.createVolume({
      name: uniqueName("restored"),
      volumeCapabilities: [mountCapability()],
      volumeContentSource: { snapshot: { snapshotId: member.snapshotId } },
    });
    assert.equal(await fsp.readFile(path.join(volumeDir(d, res.volume!.volumeId!), "who"), "utf8"), volumes[1]);
  });

  it("is idempotent by name; the same name for other volumes answers ALREADY_EXISTS", async () => {
    const volumes = await twoVolumes();
    const name = uniqueName("group");
    const first = (await gc().createVolumeGroupSnapshot({ name, sourceVolumeIds: volumes })).groupSnapshot!;
    const again = (await gc().createVolumeGroupSnapshot({ name, sourceVolumeIds: [...volumes].reverse() })).groupSnapshot!;
    assert.deepEqual(again, first);
    await expectCode(gc().createVolumeGroupSnapshot({ name, sourceVolumeIds: [volumes[0]!] }), Code.ALREADY_EXISTS, /already exists/);
  });

  it("parameters: the external-snapshotter's metadata is information, as for CreateVolume; any other key is refused before the name is looked up", async () => {
    const volumes = await twoVolumes();
    const name = uniqueName("group");
    const meta = (ns: string) => ({ "csi.storage.k8s.io/volumegroupsnapshot/name": "db", "csi.storage.k8s.io/volumegroupsnapshot/namespace": ns });
    const first = (await gc().createVolumeGroupSnapshot({ name, sourceVolumeIds: volumes, parameters: meta("team-a") })).groupSnapshot!;
    assert.deepEqual((await gc().createVolumeGroupSnapshot({ name, sourceVolumeIds: volumes, parameters: meta("team-b") })).groupSnapshot, first);
    assert.deepEqual((await gc().createVolumeGroupSnapshot({ name, sourceVolumeIds: volumes })).groupSnapshot, first);
    const other = gc().createVolumeGroupSnapshot({ name, sourceVolumeIds: volumes, parameters: { tier: "gold" } });
    await expectCode(other, Code.INVALID_ARGUMENT, /unknown snapshot parameters "tier"/);
  });

  it("GetVolumeGroupSnapshot answers the group with its members", async () => {
    const volumes = await twoVolumes();
    const g = (await gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes })).groupSnapshot!;
    const ids = g.snapshots!.map((s) => s.snapshotId!);
    assert.deepEqual((await gc().getVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: ids })).groupSnapshot, g);
    assert.deepEqual((await gc().getVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: [...ids].reverse() })).groupSnapshot, g);
    await expectCode(gc().getVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: [ids[0]!] }), Code.INVALID_ARGUMENT, /do not match/);
  });

  it("Get and Delete of a group that exists with no snapshot_ids answer INVALID_ARGUMENT (the field is REQUIRED), naming the members; the group stays whole", async () => {
    const volumes = await twoVolumes();
    const g = (await gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes })).groupSnapshot!;
    const ids = g.snapshots!.map((s) => s.snapshotId!);
    const required = new RegExp(`snapshot_ids is required: name the member snapshots of group snapshot ${g.groupSnapshotId} \\[${ids.join(", ")}\\]`);
    for (const snapshotIds of [undefined, []]) {
      await expectCode(gc().getVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds }), Code.INVALID_ARGUMENT, required);
      await expectCode(gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds }), Code.INVALID_ARGUMENT, required);
    }
    assert.deepEqual((await gc().getVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: ids })).groupSnapshot, g);
    for (const id of ids) assert.equal((await d.client.controller.getSnapshot({ snapshotId: id })).snapshot!.groupSnapshotId, g.groupSnapshotId);
    for (const id of ids) await fsp.access(path.join(d.root, "snapshots", "data", id));
    await gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: ids });
  });

  it("DeleteVolumeGroupSnapshot waits for a restore from a member (ABORTED; naming no members is INVALID_ARGUMENT at once), then removes every member", async () => {
    const volumes = await twoVolumes();
    // Enough content that restoring it takes a while: 600 files of 64 KiB.
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    await Promise.all(Array.from({ length: 600 }, (_, i) => fsp.writeFile(path.join(volumeDir(d, volumes[0]!), `f${i}`), chunk)));
    const g = (await gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes })).groupSnapshot!;
    const member = g.snapshots!.find((s) => s.sourceVolumeId === volumes[0])!.snapshotId!;
    const restore = d.client.controller.createVolume({
      name: uniqueName("restore"),
      volumeCapabilities: [mountCapability()],
      volumeContentSource: { snapshot: { snapshotId: member } },
    });
    // The restore is running once its copy has begun in .tmp.
    for (let i = 0; i < 500 && (await fsp.readdir(path.join(d.root, ".tmp"))).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    const ids = g.snapshots!.map((s) => s.snapshotId!);
    // Naming no members is refused as such (INVALID_ARGUMENT), not kept waiting behind the restore.
    await expectCode(gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: [] }), Code.INVALID_ARGUMENT, /snapshot_ids is required/);
    await expectCode(gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: ids }), Code.ABORTED, new RegExp(member));
    const restored = (await restore).volume!.volumeId!;
    assert.equal((await fsp.readdir(volumeDir(d, restored))).length, 601, "the restore copied every file");
    await gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: ids });
    for (const s of g.snapshots!) await expectCode(d.client.controller.getSnapshot({ snapshotId: s.snapshotId! }), Code.NOT_FOUND);
  });

  it("a member cannot be deleted alone (INVALID_ARGUMENT); DeleteVolumeGroupSnapshot removes the group and every member", async () => {
    const volumes = await twoVolumes();
    const g = (await gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes })).groupSnapshot!;
    const ids = g.snapshots!.map((s) => s.snapshotId!);
    await expectCode(d.client.controller.deleteSnapshot({ snapshotId: ids[0] }), Code.INVALID_ARGUMENT, /part of group snapshot/);
    await expectCode(gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: [ids[0]!] }), Code.INVALID_ARGUMENT, /do not match/);
    await gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: ids });
    await expectCode(gc().getVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId }), Code.NOT_FOUND);
    for (const id of ids) await expectCode(d.client.controller.getSnapshot({ snapshotId: id }), Code.NOT_FOUND);
    for (const id of ids) await assert.rejects(fsp.access(path.join(d.root, "snapshots", "data", id)), /ENOENT/);
    await gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: ids }); // idempotent
  });

  it("of a directory volume that is mounted answers FAILED_PRECONDITION (only the node's own file system could be frozen)", async () => {
    const volumes = await twoVolumes();
    const staging = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId: volumes[1], stagingTargetPath: staging, volumeCapability: mountCapability() });
    try {
      await expectCode(gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes }), Code.FAILED_PRECONDITION, /in use .* directory volume/);
    } finally {
      await d.client.node.nodeUnstageVolume({ volumeId: volumes[1], stagingTargetPath: staging });
    }
    await gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes });
  });

  it("of a volume that does not exist answers NOT_FOUND and leaves no member behind", async () => {
    const [vol] = await twoVolumes();
    const before = (await d.client.controller.listSnapshots({})).entries!.length;
    await expectCode(
      gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: [vol!, "hp-00000000000000000000000000000000"] }),
      Code.NOT_FOUND,
      /does not exist/,
    );
    assert.equal((await d.client.controller.listSnapshots({})).entries!.length, before);
    // Of a backend whose volumes are never in groups, but whose records are all here: still NOT_FOUND.
    await expectCode(
      gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: [vol!, "mem-00000000000000000000000000000000"] }),
      Code.NOT_FOUND,
      /does not exist/,
    );
  });

  it("of a shared volume: NOT_FOUND where no volume is, refused where one is, with or without this controller's record of it", async () => {
    const [vol] = await twoVolumes();
    const parameters = NFS_LOCAL.parameters(d); // makes the share
    // A well-formed ID on a share the driver may use, naming a directory that is not there.
    const missing = `nfs1:d::${encodePart(d.share.slice(1))}:${uniqueName("none")}`;
    await expectCode(gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: [vol!, missing] }), Code.NOT_FOUND, /does not exist/);
    const shared = (await d.client.controller.createVolume({ name: uniqueName("pvc"), volumeCapabilities: [mountCapability()], parameters })).volume!;
    const refused = () => gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: [vol!, shared.volumeId!] });
    await expectCode(refused(), Code.FAILED_PRECONDITION, /offered only for volumes this node can hold still/);
    // Made by another controller: this one holds no record of it, and the volume is still there.
    await fsp.rm(path.join(d.root, "shared"), { recursive: true });
    await fsp.mkdir(path.join(d.root, "shared"));
    await expectCode(refused(), Code.FAILED_PRECONDITION, /offered only for volumes this node can hold still/);
    await d.client.controller.deleteVolume({ volumeId: shared.volumeId });
    await expectCode(refused(), Code.NOT_FOUND, /does not exist/);
  });

  it("of a memory volume answers FAILED_PRECONDITION: the spec's code for volumes that cannot be snapshotted together", async () => {
    const [vol] = await twoVolumes();
    const memory = await createVolume(d, { capacityRange: { requiredBytes: 4 * 1024 ** 2, limitBytes: 0 }, parameters: MEMORY.parameters(d) });
    await expectCode(
      gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: [vol!, memory] }),
      Code.FAILED_PRECONDITION,
      /memory volume .* offered only for volumes this node can hold still/,
    );
    await d.client.controller.deleteVolume({ volumeId: memory });
  });

  it("a copy failing part-way removes the members already cut", async () => {
    const volumes = await twoVolumes();
    const metas = async () => (await fsp.readdir(path.join(d.root, "snapshots", "meta"))).length;
    const before = await metas();
    await fsp.rm(volumeDir(d, volumes[1]!), { recursive: true }); // the second copy will fail
    await expectCode(gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes }), Code.FAILED_PRECONDITION, /missing/);
    assert.equal(await metas(), before);
    const notes = (await fsp.readdir(path.join(d.root, "snapshots", "groups"))).filter((n) => n.endsWith(".pending.json"));
    assert.deepEqual(notes, [], "nor a note of them");
  });

  const bad: [string, object, RegExp][] = [
    ["no name", { sourceVolumeIds: ["hp-00000000000000000000000000000000"] }, /name is required/],
    ["no source volumes", { name: "g" }, /source_volume_ids is required/],
    ["a volume named twice", { name: "g", sourceVolumeIds: ["hp-00000000000000000000000000000000", "hp-00000000000000000000000000000000"] }, /more than once/],
    ["a hostile volume ID", { name: "g", sourceVolumeIds: ["../x"] }, /source_volume_ids\[0\]/],
    ["an unknown parameter", { name: "g", sourceVolumeIds: ["hp-00000000000000000000000000000000"], parameters: { x: "y" } }, /unknown snapshot parameters/],
  ];
  for (const [what, req, message] of bad) {
    it(`CreateVolumeGroupSnapshot with ${what} answers INVALID_ARGUMENT`, async () => {
      await expectCode(gc().createVolumeGroupSnapshot(req), Code.INVALID_ARGUMENT, message);
    });
  }

  it("Get of an unknown group answers NOT_FOUND; Delete of one succeeds, with no snapshot_ids too (as csi-sanity asks); both need an ID", async () => {
    await expectCode(gc().getVolumeGroupSnapshot({ groupSnapshotId: "group-00000000000000000000000000000000" }), Code.NOT_FOUND);
    await expectCode(gc().getVolumeGroupSnapshot({ groupSnapshotId: "invalid-id" }), Code.NOT_FOUND);
    await gc().deleteVolumeGroupSnapshot({ groupSnapshotId: "invalid-id" });
    await gc().deleteVolumeGroupSnapshot({ groupSnapshotId: "group-00000000000000000000000000000000", snapshotIds: ["snap-00000000000000000000000000000000"] });
    await expectCode(gc().getVolumeGroupSnapshot({}), Code.INVALID_ARGUMENT, /group_snapshot_id is required/);
    await expectCode(gc().deleteVolumeGroupSnapshot({}), Code.INVALID_ARGUMENT, /group_snapshot_id is required/);
  });
});

describe("Volume group snapshots of volumes in use", function () {
  this.timeout(120_000);
  let d: DriverProcess;
  const used: PodVolume[] = [];
  before(async () => (d = await startDriver())); // image volumes: the default on a root without quotas
  afterEach(async () => {
    thawUnder(d.dir);
    for (const v of used.splice(0)) await v.release().catch(() => undefined);
  });
  after(async () => destroyDriver(d));

  const IMAGE = COPY_CASES.find((c) => c.layout === "image" && !c.root && !c.fsType)!;
  const BLOCK = COPY_CASES.find((c) => c.layout === "block" && !c.root)!;
  const use = async (c: CopyCase, source?: VolumeContentSource) => {
    const v = await PodVolume.create(d, c, source);
    used.push(v);
    return v;
  };

  /** The files w-0 … w-N complete in `v` (as written by writer.ts's "pairs" mode with `prefix`): N, checking there is no gap. */
  async function lastComplete(v: PodVolume, prefix: string): Promise<number> {
    const files = await v.files();
    let n = -1;
    while (files.get(fileName(n + 1))?.equals(fileContent(n + 1, prefix))) n++;
    const beyond = [...files.keys()].filter((k) => k.startsWith("w-") && Number(k.slice(2)) > n + 1);
    assert.deepEqual(beyond, [], `no file after the first missing or torn one (w-${n + 1})`);
    return n;
  }

  it("freezes every member before copying any: the members are one point in time, holding every write completed before the call", async () => {
    const [a, b] = [await use(IMAGE), await use(IMAGE)];
    const writer = new Writer("pairs", a!.target, b!.target); // a/w-N, then b/w-N, then N+1…
    let group;
    let before = -1;
    try {
      await writer.advance(40);
      before = writer.latest;
      group = (await gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: [a!.volumeId, b!.volumeId] })).groupSnapshot!;
      await writer.advance(20); // thawed
    } finally {
      await writer.stop();
    }
    for (const s of group.snapshots!) fsckImage(path.join(d.root, "snapshots", "data", s.snapshotId!), "ext4");
    const [ra, rb] = [await use(IMAGE, { snapshot: { snapshotId: group.snapshots![0]!.snapshotId } }), await use(IMAGE, { snapshot: { snapshotId: group.snapshots![1]!.snapshotId } })];
    const [na, nb] = [await lastComplete(ra!, "a"), await lastComplete(rb!, "b")];
    assert.ok(na >= before && nb >= before, `every pair completed before the call is in the group (${na}, ${nb} ≥ ${before})`);
    // The writer writes a/w-N before b/w-N: at any one instant b holds a's files or one fewer.
    assert.ok(nb === na || nb === na - 1, `one point in time: a holds up to w-${na}, b up to w-${nb}`);
  });

  it("a raw block volume in use answers FAILED_PRECONDITION (a device cannot be frozen); once unstaged it is copied", async () => {
    const image = await use(IMAGE);
    const block = await use(BLOCK);
    await expectCode(
      gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: [image.volumeId, block.volumeId] }),
      Code.FAILED_PRECONDITION,
      /in use .* raw block volume/,
    );
    await block.release();
    used.pop();
    await gc().createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: [image.volumeId, block.volumeId] });
  });

  const gc = () => d.client.groupController;
});
