// Snapshots of shared volumes are kept on the share, found by any node from their ID alone.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { HOSTPATH, NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { ShareIo } from "../../src/backends/nfs/share-io";
import { encodePart, locationKey } from "../../src/backends/nfs/volume-id";
import { snapshotKeyOf } from "../../src/backends/nfs/snapshot-id";

const RWX = Mode.MULTI_NODE_MULTI_WRITER;

describe("Snapshots of shared volumes, kept on the share", function () {
  // Two nodes: each its own driver and root, one share both may use.
  let a: DriverProcess;
  let b: DriverProcess;
  let share: string;
  before(async () => {
    a = await startDriver({ nodeId: "node-a" });
    share = NFS_LOCAL.parameters(a).share!;
    b = await startDriver({ nodeId: "node-b", extraArgs: ["--allow-share", share] });
  });
  after(async () => {
    await destroyDriver(b);
    await destroyDriver(a);
  });

  const snapshots = () => path.join(share, ".csi-lab", "snapshots");
  const create = async (d: DriverProcess, name = uniqueName("pvc"), source?: string) =>
    (
      await d.client.controller.createVolume({
        name,
        volumeCapabilities: [mountCapability(RWX)],
        parameters: NFS_LOCAL.parameters(a),
        ...(source ? { volumeContentSource: { snapshot: { snapshotId: source } } } : {}),
      })
    ).volume!;
  const dirOf = (v: { volumeContext?: Record<string, string> }) => path.join(share, v.volumeContext!["csi-lab/subDir"]!);

  it("CreateSnapshot copies the volume onto its share, under an ID that names the share", async () => {
    const v = await create(a);
    await fsp.writeFile(path.join(dirOf(v), "f"), "on the share");
    const name = uniqueName("snap");
    const snap = (await a.client.controller.createSnapshot({ name, sourceVolumeId: v.volumeId })).snapshot!;
    const key = snapshotKeyOf(name);
    assert.equal(snap.snapshotId, `nfsnap1::${encodePart(share.slice(1))}:${key}`);
    assert.equal(snap.sourceVolumeId, v.volumeId);
    assert.equal(snap.readyToUse, true);
    assert.equal(await fsp.readFile(path.join(snapshots(), key, "f"), "utf8"), "on the share");
    assert.equal(JSON.parse(await fsp.readFile(path.join(snapshots(), `${key}.json`), "utf8")).snapshotId, snap.snapshotId);
    assert.deepEqual(await fsp.readdir(path.join(a.root, "snapshots", "data")), [], "nothing in the node's own snapshot store");
    // A retry is the same snapshot; the volume may have changed since.
    await fsp.writeFile(path.join(dirOf(v), "f"), "changed after");
    assert.deepEqual((await a.client.controller.createSnapshot({ name, sourceVolumeId: v.volumeId })).snapshot, snap);
    assert.equal(await fsp.readFile(path.join(snapshots(), key, "f"), "utf8"), "on the share");
  });

  it("another node snapshots a volume it holds no record of, and each node restores, finds and deletes what the other made", async () => {
    const v = await create(a);
    await fsp.writeFile(path.join(dirOf(v), "data"), "node a's volume");
    // Kubernetes hands the snapshot to whichever node the volume's node affinity matches first.
    const snap = (await b.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: v.volumeId })).snapshot!;
    assert.equal(snap.sizeBytes, 0, "b does not know the volume's size (a label, in a's record): unknown");
    assert.deepEqual((await a.client.controller.getSnapshot({ snapshotId: snap.snapshotId })).snapshot, snap);
    assert.deepEqual((await a.client.controller.listSnapshots({ snapshotId: snap.snapshotId })).entries!.map((e) => e.snapshot), [snap]);
    const restored = await create(a, uniqueName("restored"), snap.snapshotId);
    assert.equal(await fsp.readFile(path.join(dirOf(restored), "data"), "utf8"), "node a's volume");
    // b lists the snapshots it took; a lists none of them.
    const listed = async (d: DriverProcess) => (await d.client.controller.listSnapshots({ sourceVolumeId: v.volumeId })).entries!.map((e) => e.snapshot!.snapshotId);
    assert.deepEqual(await listed(b), [snap.snapshotId]);
    assert.deepEqual(await listed(a), []);
    await a.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId });
    const key = snap.snapshotId!.split(":").at(-1)!;
    assert.equal(existsSync(path.join(snapshots(), key)), false);
    assert.equal(existsSync(path.join(snapshots(), `${key}.json`)), false);
    await expectCode(b.client.controller.getSnapshot({ snapshotId: snap.snapshotId }), Code.NOT_FOUND);
    assert.deepEqual(await listed(b), [], "b forgets it once it sees it gone");
    await b.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId }); // idempotent
    await expectCode(create(b, uniqueName("restored"), snap.snapshotId), Code.NOT_FOUND, /snapshot .* does not exist/);
  });

  it("a volume, its snapshot and a restore of it, all deleted, leave no lock file of theirs in .csi-lab/locks", async () => {
    const name = uniqueName("pvc");
    const v = await create(a, name);
    const snapName = uniqueName("snap");
    const snap = (await a.client.controller.createSnapshot({ name: snapName, sourceVolumeId: v.volumeId })).snapshot!;
    const restored = await create(b, uniqueName("restored"), snap.snapshotId);
    const keys = [locationKey({ server: "", share, subDir: name }), snapshotKeyOf(snapName), locationKey({ server: "", share, subDir: path.basename(dirOf(restored)) })];
    const locks = async () => (await fsp.readdir(path.join(share, ".csi-lab", "locks"))).filter((f) => keys.some((k) => f.startsWith(k)));
    assert.deepEqual((await locks()).sort(), [...keys].sort(), "each was locked");
    await b.client.controller.deleteVolume({ volumeId: restored.volumeId });
    await a.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId });
    await a.client.controller.deleteVolume({ volumeId: v.volumeId });
    assert.deepEqual(await locks(), []);
    await b.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId }); // idempotent, and again leaves none
    assert.deepEqual(await locks(), []);
  });

  it("a volume deleted with onDelete: retain cannot be snapshotted or grown by a node without its record, though its directory stays", async () => {
    const v = (await a.client.controller.createVolume({ name: uniqueName("pvc"), volumeCapabilities: [mountCapability(RWX)], parameters: NFS_LOCAL.parameters(a, { onDelete: "retain" }) })).volume!;
    await fsp.writeFile(path.join(dirOf(v), "f"), "kept");
    await b.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 2 * 1024 ** 3, limitBytes: 0 } }); // while it exists: proven
    await a.client.controller.deleteVolume({ volumeId: v.volumeId });
    assert.equal(await fsp.readFile(path.join(dirOf(v), "f"), "utf8"), "kept");
    await expectCode(b.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: v.volumeId }), Code.NOT_FOUND, /does not exist/);
    await expectCode(b.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 3 * 1024 ** 3, limitBytes: 0 } }), Code.NOT_FOUND);
  });

  it("ListSnapshots pages through the store's snapshots and the shares' as one list, and a restart keeps them", async () => {
    const v = await create(a);
    const hp = (await a.client.controller.createVolume({ name: uniqueName("hp"), volumeCapabilities: [mountCapability(Mode.SINGLE_NODE_WRITER)], parameters: HOSTPATH.parameters(a) })).volume!;
    const made = [];
    for (let i = 0; i < 3; i++) made.push((await a.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: v.volumeId })).snapshot!.snapshotId!);
    for (let i = 0; i < 2; i++) made.push((await a.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: hp.volumeId })).snapshot!.snapshotId!);
    const all = async () => {
      const ids: string[] = [];
      let token = "";
      do {
        const page = await a.client.controller.listSnapshots({ maxEntries: 2, startingToken: token });
        ids.push(...page.entries!.map((e) => e.snapshot!.snapshotId!));
        token = page.nextToken!;
      } while (token !== "");
      return ids;
    };
    const before = await all();
    assert.deepEqual(before, [...before].sort(), "in ID order");
    for (const id of made) assert.ok(before.includes(id), id);
    assert.equal(new Set(before).size, before.length, "no snapshot twice");
    await a.restart();
    assert.deepEqual(await all(), before);
  });

  it("a name is one snapshot: another volume's on the same share, or a hostPath volume's, is ALREADY_EXISTS", async () => {
    const [v, w] = [await create(a), await create(a)];
    const hp = (await a.client.controller.createVolume({ name: uniqueName("hp"), volumeCapabilities: [mountCapability(Mode.SINGLE_NODE_WRITER)], parameters: HOSTPATH.parameters(a) })).volume!;
    const name = uniqueName("snap");
    await a.client.controller.createSnapshot({ name, sourceVolumeId: v.volumeId });
    await expectCode(a.client.controller.createSnapshot({ name, sourceVolumeId: w.volumeId }), Code.ALREADY_EXISTS, /already exists, of volume/);
    await expectCode(a.client.controller.createSnapshot({ name, sourceVolumeId: hp.volumeId }), Code.ALREADY_EXISTS, /already exists as nfsnap1:/);
    const other = uniqueName("snap");
    await a.client.controller.createSnapshot({ name: other, sourceVolumeId: hp.volumeId });
    await expectCode(a.client.controller.createSnapshot({ name: other, sourceVolumeId: v.volumeId }), Code.ALREADY_EXISTS, /already exists, of volume/);
  });

  it("a copy a crash left without its record is never taken for the snapshot, and a delete removes it", async () => {
    const v = await create(a);
    await fsp.writeFile(path.join(dirOf(v), "f"), "new");
    const name = uniqueName("snap");
    const key = snapshotKeyOf(name);
    // What a crash between moving the copy into place and writing its record leaves, from an older try.
    await fsp.mkdir(path.join(snapshots(), key), { recursive: true });
    await fsp.writeFile(path.join(snapshots(), key, "stale"), "old");
    const snap = (await a.client.controller.createSnapshot({ name, sourceVolumeId: v.volumeId })).snapshot!;
    assert.deepEqual(await fsp.readdir(path.join(snapshots(), key)), ["f"]);
    assert.deepEqual(await fsp.readdir(path.join(share, ".csi-lab", "trash")), [], "the stale copy is not kept in the trash");
    await a.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId });
    // Only the copy, no record, a copy cut short in tmp and a record cut short by a kill -9: deleted too.
    await fsp.mkdir(path.join(snapshots(), key));
    await fsp.mkdir(path.join(share, ".csi-lab", "tmp", `${key}.0badf00d`));
    await fsp.writeFile(path.join(snapshots(), `${key}.json.0badf00d.tmp`), "{");
    await a.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId });
    assert.deepEqual((await fsp.readdir(snapshots())).filter((e) => e.startsWith(key)), []);
    assert.deepEqual(await fsp.readdir(path.join(share, ".csi-lab", "trash")), []);
    assert.deepEqual((await fsp.readdir(path.join(share, ".csi-lab", "tmp"))).filter((e) => e.startsWith(key)), []);
  });

  it("a symlink planted in the share's .csi-lab leads no delete or clean-up outside the share", async () => {
    const v = await create(a);
    await fsp.writeFile(path.join(dirOf(v), "f"), "mine");
    const name = uniqueName("snap");
    const snap = (await a.client.controller.createSnapshot({ name, sourceVolumeId: v.volumeId })).snapshot!;
    const key = snapshotKeyOf(name);
    const outside = path.join(a.dir, "outside");
    const meta = path.join(share, ".csi-lab");
    const plant = async (sub: string) => {
      await fsp.mkdir(outside, { recursive: true });
      await fsp.rename(path.join(meta, sub), path.join(outside, sub));
      await fsp.symlink(path.join(outside, sub), path.join(meta, sub));
    };
    const unplant = async (sub: string) => {
      await fsp.rm(path.join(meta, sub));
      await fsp.rename(path.join(outside, sub), path.join(meta, sub));
    };
    try {
      // The snapshots directory moved out and a symlink put in its place: its record and copy stay where they are.
      await plant("snapshots");
      const deleting = expectCode(a.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId }), Code.FAILED_PRECONDITION, /symbolic link/);
      await deleting.catch(() => undefined);
      assert.ok(existsSync(path.join(outside, "snapshots", `${key}.json`)), "the record outside is left");
      assert.equal(await fsp.readFile(path.join(outside, "snapshots", key, "f"), "utf8"), "mine", "the copy outside is left");
      await deleting;
      await expectCode(a.client.controller.getSnapshot({ snapshotId: snap.snapshotId }), Code.FAILED_PRECONDITION, /symbolic link/);
      await unplant("snapshots");
      // tmp a symlink to a directory outside: what is there under this key's name is not the driver's to remove.
      await fsp.mkdir(path.join(meta, "tmp"), { recursive: true });
      await plant("tmp");
      await fsp.writeFile(path.join(outside, "tmp", `${key}.not-mine`), "x");
      await a.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId }).catch(() => undefined);
      assert.ok(existsSync(path.join(outside, "tmp", `${key}.not-mine`)), "what is outside under the key's name is left");
      await fsp.rm(path.join(outside, "tmp", `${key}.not-mine`));
      await unplant("tmp");
      // The trash swapped for a symlink between moving a copy into it and emptying it (a race, here made certain).
      await fsp.mkdir(path.join(meta, "trash"), { recursive: true });
      await plant("trash");
      await fsp.writeFile(path.join(outside, "trash", "not-mine"), "x");
      const io = new ShareIo(5000);
      await io.run("clean", { root: share, trash: true }, "the share").catch(() => undefined);
      assert.ok(existsSync(path.join(outside, "trash", "not-mine")), "what is outside is left");
      await fsp.rm(path.join(outside, "trash", "not-mine"));
      await unplant("trash");
    } finally {
      for (const sub of ["snapshots", "tmp", "trash"]) {
        if ((await fsp.lstat(path.join(meta, sub)).catch(() => undefined))?.isSymbolicLink()) await unplant(sub);
      }
    }
    await a.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId });
    assert.equal(existsSync(path.join(snapshots(), key)), false);
  });

  it("an ID naming a share the driver may not use touches nothing; malformed and newer IDs are INVALID_ARGUMENT", async () => {
    const elsewhere = path.join(a.dir, "not-allowed");
    const key = snapshotKeyOf("x");
    await fsp.mkdir(path.join(elsewhere, ".csi-lab", "snapshots", key), { recursive: true });
    await fsp.writeFile(path.join(elsewhere, ".csi-lab", "snapshots", `${key}.json`), "{}");
    const id = `nfsnap1::${encodePart(elsewhere.slice(1))}:${key}`;
    await expectCode(a.client.controller.getSnapshot({ snapshotId: id }), Code.NOT_FOUND);
    await expectCode(a.client.controller.deleteSnapshot({ snapshotId: id }), Code.NOT_FOUND, /not one this driver may delete, and nothing was touched/);
    await expectCode(create(a, uniqueName("restored"), id), Code.NOT_FOUND);
    assert.ok(existsSync(path.join(elsewhere, ".csi-lab", "snapshots", key)));
    assert.ok(existsSync(path.join(elsewhere, ".csi-lab", "snapshots", `${key}.json`)));
    for (const bad of [`nfsnap1::${encodePart(share.slice(1))}:..`, `nfsnap1::${encodePart(share.slice(1))}`, `nfsnap1::a,..,b:${key}`]) {
      await expectCode(a.client.controller.getSnapshot({ snapshotId: bad }), Code.INVALID_ARGUMENT, /not a valid shared snapshot ID/);
    }
    await expectCode(a.client.controller.deleteSnapshot({ snapshotId: `nfsnap2::x:${key}` }), Code.INVALID_ARGUMENT, /newer csi-lab/);
  });
});
