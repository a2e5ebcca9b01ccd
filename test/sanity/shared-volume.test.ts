// The shared (nfs) backend on a local share: RWX, onDelete, subDir templates, ownership, IDs.
import assert from "node:assert/strict";
import { existsSync, promises as fsp, readFileSync } from "node:fs";
import * as path from "node:path";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, isMounted, literal, Mode, mountCapability, uniqueName, type DriverProcess } from "./harness";
import { encodePart, locationKey } from "../../src/backends/nfs/volume-id";
import { mountFs, unmount } from "../../src/mount/syscalls";
import { SECCOMP_VARIANTS, startFor } from "./seccomp-variants";

const RWX = Mode.MULTI_NODE_MULTI_WRITER;

for (const variant of SECCOMP_VARIANTS) {
describe(`Shared volumes on a local share${variant.title}`, function () {
  let d: DriverProcess;
  let share: string;
  before(async function () {
    if (variant.skip) this.skip();
    d = await startFor(variant);
    share = NFS_LOCAL.parameters(d).share!;
  });
  after(async () => destroyDriver(d));

  const create = async (extra: Record<string, string> = {}, name = uniqueName("pvc"), mode = RWX) =>
    (await d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability(mode)], parameters: NFS_LOCAL.parameters(d, extra) })).volume!;

  it("CreateVolume makes a directory on the share, reachable from every node that reaches shares, with the location in its ID and context", async () => {
    const name = uniqueName("pvc");
    const v = await create({}, name);
    assert.equal(v.volumeId, `nfs1:d::${encodePart(share.slice(1))}:${name}`);
    assert.deepEqual(v.accessibleTopology, [{ segments: { "csi-lab.example.org/shared": "reachable" } }]);
    assert.deepEqual(v.volumeContext, { "csi-lab/backend": "nfs", "csi-lab/share": share, "csi-lab/subDir": name });
    // A retry whose requisite topologies lack that key (nodes registered before it existed) is the same volume.
    const retry = await d.client.controller.createVolume({
      name,
      volumeCapabilities: [mountCapability(RWX)],
      parameters: NFS_LOCAL.parameters(d),
      accessibilityRequirements: { requisite: [{ segments: { "csi-lab.example.org/node": d.nodeId } }], preferred: [] },
    });
    assert.equal(retry.volume!.volumeId, v.volumeId);
    const st = await fsp.stat(path.join(share, name));
    assert.ok(st.isDirectory());
    assert.equal(st.mode & 0o7777, 0o777);
  });

  it("two targets published from one ReadWriteMany volume see each other's writes at once", async () => {
    const v = await create();
    const stagingTargetPath = d.path(uniqueName("stage"));
    const req = { volumeId: v.volumeId, volumeContext: v.volumeContext, volumeCapability: mountCapability(RWX) };
    await d.client.node.nodeStageVolume({ ...req, stagingTargetPath });
    const [a, b] = [d.path(uniqueName("pod-a")), d.path(uniqueName("pod-b"))];
    for (const t of [a, b]) await d.client.node.nodePublishVolume({ ...req, stagingTargetPath, targetPath: t });
    await fsp.writeFile(path.join(a, "from-a"), "written by a");
    await fsp.writeFile(path.join(b, "from-b"), "written by b");
    assert.equal(await fsp.readFile(path.join(b, "from-a"), "utf8"), "written by a");
    assert.equal(await fsp.readFile(path.join(a, "from-b"), "utf8"), "written by b");
    assert.equal(await fsp.readFile(path.join(share, v.volumeContext!["csi-lab/subDir"]!, "from-a"), "utf8"), "written by a");
    for (const t of [a, b]) await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: t });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath });
    assert.equal(await isMounted(stagingTargetPath), false);
  });

  const withData = async (onDelete: string) => {
    const v = await create({ onDelete });
    const dir = path.join(share, v.volumeContext!["csi-lab/subDir"]!);
    await fsp.writeFile(path.join(dir, "data"), "payload");
    await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    return { v, dir };
  };

  it("onDelete: delete removes the directory and its data", async () => {
    const { dir } = await withData("delete");
    assert.equal(existsSync(dir), false);
    assert.deepEqual(await fsp.readdir(path.join(share, ".csi-lab", "trash")), []);
  });

  it("a delete also removes what an interrupted create of the volume left on the share (a copy in tmp, a marker half-written)", async () => {
    const v = await create();
    const key = (await fsp.readdir(path.join(share, ".csi-lab", "volumes"))).find((f) => f.endsWith(".json") && JSON.parse(readFileSync(path.join(share, ".csi-lab", "volumes", f), "utf8")).volumeId === v.volumeId)!.slice(0, -5);
    await fsp.mkdir(path.join(share, ".csi-lab", "tmp", `${key}.0badf00d`));
    await fsp.writeFile(path.join(share, ".csi-lab", "volumes", `${key}.json.0badf00d.tmp`), "{");
    await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    for (const sub of ["tmp", "volumes"]) assert.deepEqual((await fsp.readdir(path.join(share, ".csi-lab", sub))).filter((e) => e.startsWith(key)), [], sub);
  });

  it("a DeleteVolume done removes the volume's lock file from .csi-lab/locks, whatever its onDelete, and so does a second", async () => {
    for (const onDelete of ["delete", "retain", "archive"]) {
      const name = uniqueName("pvc");
      const key = locationKey({ server: "", share, subDir: name });
      const v = await create({ onDelete }, name);
      assert.ok(existsSync(path.join(share, ".csi-lab", "locks", key)), `${onDelete}: the create took the lock`);
      await d.client.controller.deleteVolume({ volumeId: v.volumeId });
      assert.deepEqual(await fsp.readdir(path.join(share, ".csi-lab", "locks")).then((e) => e.filter((f) => f.startsWith(key))), [], `${onDelete}: its lock file stays`);
      await d.client.controller.deleteVolume({ volumeId: v.volumeId }); // idempotent: takes the lock again, and removes it again
      assert.equal(existsSync(path.join(share, ".csi-lab", "locks", key)), false, `${onDelete}: a second delete leaves its lock file`);
    }
  });

  it("onDelete: retain leaves the directory and its data", async () => {
    const { v, dir } = await withData("retain");
    assert.equal(await fsp.readFile(path.join(dir, "data"), "utf8"), "payload");
    await expectCode(d.client.controller.controllerGetVolume({ volumeId: v.volumeId }), Code.NOT_FOUND);
  });

  it("onDelete: archive renames the directory to archived-<name>-<time>, data intact", async () => {
    const { dir } = await withData("archive");
    assert.equal(existsSync(dir), false);
    const archived = (await fsp.readdir(share)).filter((e) => e.startsWith(`archived-${path.basename(dir)}-`));
    assert.equal(archived.length, 1, archived.join(","));
    assert.match(archived[0]!, /-\d{8}T\d{6}Z$/);
    assert.equal(await fsp.readFile(path.join(share, archived[0]!, "data"), "utf8"), "payload");
  });

  it("DeleteVolume needs nothing but the ID: a restarted driver without the record still deletes", async () => {
    const v = await create();
    const dir = path.join(share, v.volumeContext!["csi-lab/subDir"]!);
    await fsp.rm(path.join(d.root, "shared"), { recursive: true });
    await fsp.mkdir(path.join(d.root, "shared"));
    await d.restart();
    await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    assert.equal(existsSync(dir), false);
    await d.client.controller.deleteVolume({ volumeId: v.volumeId }); // and again: idempotent
  });

  it("subDir templates take the provisioner's metadata", async () => {
    const meta = { "csi.storage.k8s.io/pvc/namespace": "team-a", "csi.storage.k8s.io/pvc/name": "data", "csi.storage.k8s.io/pv/name": "pvc-123" };
    const v = await create({ subDir: "${pvc.metadata.namespace}/${pvc.metadata.name}-${pv.metadata.name}", ...meta });
    assert.equal(v.volumeContext!["csi-lab/subDir"], "team-a/data-pvc-123");
    assert.ok((await fsp.stat(path.join(share, "team-a", "data-pvc-123"))).isDirectory());
  });

  it("a template without the provisioner's metadata answers INVALID_ARGUMENT, naming the flag", async () => {
    await expectCode(create({ subDir: "${pvc.metadata.name}" }), Code.INVALID_ARGUMENT, /--extra-create-metadata/);
    await expectCode(create({ subDir: "${pvc.uid}" }), Code.INVALID_ARGUMENT, /pvc\.uid/);
    await expectCode(create({ subDir: "../escape" }), Code.INVALID_ARGUMENT, /subDir/);
  });

  it("mountPermissions, uid and gid set the new directory's mode and owner", async () => {
    const v = await create({ mountPermissions: "0750", uid: "1234", gid: "5678" });
    const st = await fsp.stat(path.join(share, v.volumeContext!["csi-lab/subDir"]!));
    assert.equal(st.mode & 0o7777, 0o750);
    assert.equal(st.uid, 1234);
    assert.equal(st.gid, 5678);
  });

  it("an existing directory is adopted with its content (a re-made claim gets its retained data back)", async () => {
    const meta = { "csi.storage.k8s.io/pvc/namespace": "ns", "csi.storage.k8s.io/pvc/name": "keep" };
    const params = { subDir: "${pvc.metadata.namespace}/${pvc.metadata.name}", onDelete: "retain", ...meta };
    const first = await create(params);
    await fsp.writeFile(path.join(share, "ns", "keep", "old"), "from the first claim");
    await d.client.controller.deleteVolume({ volumeId: first.volumeId });
    const second = await create(params);
    assert.equal(second.volumeId, first.volumeId);
    assert.equal(await fsp.readFile(path.join(share, "ns", "keep", "old"), "utf8"), "from the first claim");
  });

  it("a second claim whose subDir is the same directory answers ALREADY_EXISTS, and the first keeps its data", async () => {
    const params = { subDir: "per-ns-${pvc.metadata.namespace}", "csi.storage.k8s.io/pvc/namespace": uniqueName("ns") };
    const first = await create(params);
    const dir = path.join(share, first.volumeContext!["csi-lab/subDir"]!);
    await fsp.writeFile(path.join(dir, "data"), "the first claim's");
    await expectCode(create(params), Code.ALREADY_EXISTS, /already volume .*give every claim its own subDir/);
    assert.equal(await fsp.readFile(path.join(dir, "data"), "utf8"), "the first claim's");
    await d.client.controller.deleteVolume({ volumeId: first.volumeId });
  });

  it("a claim for the directory of a live volume made on another node answers ALREADY_EXISTS; once retained, it is adopted", async () => {
    // Another node: its own driver and root (no record of this one's volumes), the same share.
    const other = await startFor(variant, { extraArgs: ["--allow-share", share] });
    try {
      const params = { subDir: "per-ns-${pvc.metadata.namespace}", "csi.storage.k8s.io/pvc/namespace": uniqueName("ns"), onDelete: "retain" };
      const first = await create(params);
      const dir = path.join(share, first.volumeContext!["csi-lab/subDir"]!);
      await fsp.writeFile(path.join(dir, "data"), "the first claim's");
      const second = { name: uniqueName("pvc"), volumeCapabilities: [mountCapability(RWX)], parameters: NFS_LOCAL.parameters(d, params) };
      await expectCode(other.client.controller.createVolume(second), Code.ALREADY_EXISTS, /is already volume .*which is in use; give every claim its own subDir/);
      await d.client.controller.deleteVolume({ volumeId: first.volumeId });
      assert.equal((await other.client.controller.createVolume(second)).volume!.volumeId, first.volumeId, "the retained directory is taken over");
      assert.equal(await fsp.readFile(path.join(dir, "data"), "utf8"), "the first claim's");
      await other.client.controller.deleteVolume({ volumeId: first.volumeId });
    } finally {
      await destroyDriver(other);
    }
  });

  it("the name of a shared volume asked for with another subDir, or on another backend, answers ALREADY_EXISTS", async () => {
    const name = uniqueName("pvc");
    const v = await create({}, name);
    await expectCode(create({ subDir: `${name}-elsewhere` }, name), Code.ALREADY_EXISTS, new RegExp(`already exists as ${literal(v.volumeId!)}`));
    assert.equal(existsSync(path.join(share, `${name}-elsewhere`)), false);
    await expectCode(
      d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], parameters: { backend: "hostpath" } }),
      Code.ALREADY_EXISTS,
      /backend nfs/,
    );
    await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    const again = await create({ subDir: `${name}-elsewhere` }, name); // the name is free once its volume is deleted
    await d.client.controller.deleteVolume({ volumeId: again.volumeId });
  });

  it("a share that does not exist answers FAILED_PRECONDITION", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability(RWX)], parameters: { backend: "nfs", share: path.join(d.share, "no-such-share") } }),
      Code.FAILED_PRECONDITION,
      /does not exist/,
    );
  });

  it("refuses block access, hostPath-only parameters and NFS mount options on a local share", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [{ block: {}, accessMode: { mode: RWX } }], parameters: NFS_LOCAL.parameters(d) }),
      Code.INVALID_ARGUMENT,
      /block/,
    );
    await expectCode(create({ capacity: "quota" }), Code.INVALID_ARGUMENT, /applies to backend hostpath/);
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability(RWX)], parameters: { backend: "nfs" } }),
      Code.INVALID_ARGUMENT,
      /needs the parameter share/,
    );
    const v = await create();
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId: v.volumeId, stagingTargetPath: d.path(uniqueName("s")), volumeCapability: mountCapability(RWX, ["nfsvers=4.1"]) }),
      Code.INVALID_ARGUMENT,
      /local path/,
    );
  });

  it("GetCapacity reports the share's free space", async () => {
    const res = await d.client.controller.getCapacity({ parameters: NFS_LOCAL.parameters(d) });
    const s = await fsp.statfs(share);
    assert.ok(Math.abs(res.availableCapacity! - s.bavail * s.bsize) < 64 * 1024 * 1024);
  });

  it("a volume ID of a newer format is refused with INVALID_ARGUMENT, not guessed at", async () => {
    const newer = "nfs2:d::srv,share:x";
    await expectCode(d.client.controller.deleteVolume({ volumeId: newer }), Code.INVALID_ARGUMENT, /newer csi-lab/);
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId: newer, stagingTargetPath: d.path("s"), volumeCapability: mountCapability(RWX) }),
      Code.INVALID_ARGUMENT,
      /newer csi-lab/,
    );
    await expectCode(d.client.controller.controllerGetVolume({ volumeId: "nfs1:d::srv,share:..,x" }), Code.INVALID_ARGUMENT, /nfs1/);
  });

  it("a long subDir gets the record form of ID, and still works from end to end", async () => {
    const name = "n".repeat(128);
    const v = await create({}, name);
    assert.match(v.volumeId!, /:#[0-9a-f]{32}$/);
    assert.ok(Buffer.byteLength(v.volumeId!) <= 128);
    const stagingTargetPath = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId: v.volumeId, volumeContext: v.volumeContext, stagingTargetPath, volumeCapability: mountCapability(RWX) });
    await fsp.writeFile(path.join(stagingTargetPath, "f"), "x");
    assert.ok(existsSync(path.join(share, name, "f")));
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath });
    await fsp.rm(path.join(d.root, "shared"), { recursive: true }); // only the record on the share is left
    await fsp.mkdir(path.join(d.root, "shared"));
    await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    assert.equal(existsSync(path.join(share, name)), false);
  });

  it("a repeated publish gives the root to the pod's fsGroup where an earlier try did not get that far", async () => {
    const v = await create();
    const cap = { mount: { fsType: "", mountFlags: [], volumeMountGroup: "5555" }, accessMode: { mode: RWX } };
    const req = { volumeId: v.volumeId, volumeContext: v.volumeContext, volumeCapability: cap };
    const stagingTargetPath = d.path(uniqueName("stage"));
    const targetPath = d.path(uniqueName("pod"));
    await d.client.node.nodeStageVolume({ ...req, stagingTargetPath });
    await d.client.node.nodePublishVolume({ ...req, stagingTargetPath, targetPath });
    assert.equal((await fsp.stat(targetPath)).gid, 5555);
    // As a crash (or a share refusing the chown) between the mount and the group change leaves it:
    await fsp.chown(targetPath, 0, 0);
    await d.client.node.nodePublishVolume({ ...req, stagingTargetPath, targetPath });
    assert.equal((await fsp.stat(targetPath)).gid, 5555);
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath });
  });

  it("a stage or publish that failed leaves nothing that makes someone else's later mount there the volume's", async () => {
    const v = await create();
    const req = { volumeId: v.volumeId, volumeContext: v.volumeContext, volumeCapability: mountCapability(RWX) };
    const failedStage = d.path(uniqueName("stage"));
    const stagingTargetPath = d.path(uniqueName("stage"));
    const targetPath = d.path(uniqueName("pod"));
    // Both places hold a file at first: the driver refuses to mount over it.
    for (const p of [failedStage, targetPath]) {
      await fsp.mkdir(p);
      await fsp.writeFile(path.join(p, "theirs"), "x");
    }
    await expectCode(d.client.node.nodeStageVolume({ ...req, stagingTargetPath: failedStage }), Code.FAILED_PRECONDITION, /refusing to mount over/);
    await d.client.node.nodeStageVolume({ ...req, stagingTargetPath });
    await expectCode(d.client.node.nodePublishVolume({ ...req, stagingTargetPath, targetPath }), Code.FAILED_PRECONDITION, /refusing to mount over/);
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath });
    // Then another program mounts a tmpfs at each place.
    for (const p of [failedStage, targetPath]) {
      await fsp.rm(path.join(p, "theirs"));
      mountFs("someone-else", p, "tmpfs", 0, "size=1m");
    }
    try {
      await expectCode(d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath }), Code.FAILED_PRECONDITION, /tmpfs from someone-else .*left alone/);
      await expectCode(d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: failedStage }), Code.FAILED_PRECONDITION, /tmpfs from someone-else .*left alone/);
      assert.ok(await isMounted(targetPath));
      assert.ok(await isMounted(failedStage));
    } finally {
      for (const p of [failedStage, targetPath]) if (await isMounted(p)) unmount(p, { detach: true });
    }
  });

  it("snapshots and clones of a shared volume copy its directory", async () => {
    const v = await create();
    await fsp.writeFile(path.join(share, v.volumeContext!["csi-lab/subDir"]!, "f"), "snapshot me");
    const snap = (await d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: v.volumeId })).snapshot!;
    const restored = (
      await d.client.controller.createVolume({
        name: uniqueName("restored"),
        volumeCapabilities: [mountCapability(RWX)],
        parameters: NFS_LOCAL.parameters(d),
        volumeContentSource: { snapshot: { snapshotId: snap.snapshotId } },
      })
    ).volume!;
    assert.equal(await fsp.readFile(path.join(share, restored.volumeContext!["csi-lab/subDir"]!, "f"), "utf8"), "snapshot me");
    await expectCode(
      d.client.groupController.createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: [v.volumeId!] }),
      Code.FAILED_PRECONDITION,
      /group snapshots are offered only for volumes this node can hold still/,
    );
  });
});
}
