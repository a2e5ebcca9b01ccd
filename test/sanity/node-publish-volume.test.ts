// NodePublishVolume / NodeUnpublishVolume: bind staging → target, flags that really apply.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "../../src/mount/mountinfo";
import { mountFs, unmount } from "../../src/mount/syscalls";
import { Code, destroyDriver, expectCode, isMounted, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { BACKENDS } from "./backends";

for (const b of BACKENDS) {
describe(`NodePublishVolume and NodeUnpublishVolume (${b.name})`, () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  /** A created and staged volume. */
  async function staged(mode = Mode.SINGLE_NODE_WRITER) {
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability(mode)], parameters: b.parameters(d) })).volume!.volumeId!;
    const stagingTargetPath = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(mode) });
    return { volumeId, stagingTargetPath };
  }

  it("creates the target, binds the volume there, and unpublish removes it", async () => {
    const v = await staged();
    const target = d.path(uniqueName("pod"), "mount");
    await fsp.mkdir(path.dirname(target));
    await d.client.node.nodePublishVolume({ ...v, targetPath: target, volumeCapability: mountCapability() });
    assert.ok(await isMounted(target));
    await fsp.writeFile(path.join(target, "from-pod"), "x");
    assert.ok(existsSync(path.join(v.stagingTargetPath, "from-pod")));
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
    assert.equal(await isMounted(target), false);
    assert.equal(existsSync(target), false, "the target directory the driver made is removed");
  });

  it("readonly gives a mount that refuses writes (EROFS) while staging stays writable", async () => {
    const v = await staged();
    const target = d.path(uniqueName("ro"));
    await d.client.node.nodePublishVolume({ ...v, targetPath: target, volumeCapability: mountCapability(), readonly: true });
    const entry = (await readMountInfo()).find((m) => m.mountPoint === target)!;
    assert.ok(entry.options.includes("ro"), entry.options.join(","));
    await assert.rejects(fsp.writeFile(path.join(target, "nope"), "x"), { code: "EROFS" });
    await fsp.writeFile(path.join(v.stagingTargetPath, "yes"), "x");
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
  });

  it("a reader-only access mode gives a read-only mount even when readonly is false, and a repeat is OK", async () => {
    const v = await staged(Mode.SINGLE_NODE_READER_ONLY);
    const target = d.path(uniqueName("rox"));
    const req = { ...v, targetPath: target, volumeCapability: mountCapability(Mode.SINGLE_NODE_READER_ONLY) };
    await d.client.node.nodePublishVolume(req);
    const entry = (await readMountInfo()).find((m) => m.mountPoint === target)!;
    assert.ok(entry.options.includes("ro"), entry.options.join(","));
    await assert.rejects(fsp.writeFile(path.join(target, "nope"), "x"), { code: "EROFS" });
    await d.client.node.nodePublishVolume(req);
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
  });

  it("applies mount flags such as noexec and nosuid to the bind", async () => {
    const v = await staged();
    const target = d.path(uniqueName("flags"));
    await d.client.node.nodePublishVolume({ ...v, targetPath: target, volumeCapability: mountCapability(Mode.SINGLE_NODE_WRITER, ["noexec,nosuid"]) });
    const entry = (await readMountInfo()).find((m) => m.mountPoint === target)!;
    assert.ok(entry.options.includes("noexec") && entry.options.includes("nosuid"), entry.options.join(","));
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
  });

  it("is idempotent with the same arguments", async () => {
    const v = await staged();
    const target = d.path(uniqueName("again"));
    const req = { ...v, targetPath: target, volumeCapability: mountCapability() };
    await d.client.node.nodePublishVolume(req);
    await d.client.node.nodePublishVolume(req);
    assert.equal((await readMountInfo()).filter((m) => m.mountPoint === target).length, 1);
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
  });

  it("with a different readonly flag on the same target answers ALREADY_EXISTS", async () => {
    const v = await staged();
    const target = d.path(uniqueName("conflict"));
    await d.client.node.nodePublishVolume({ ...v, targetPath: target, volumeCapability: mountCapability() });
    await expectCode(d.client.node.nodePublishVolume({ ...v, targetPath: target, volumeCapability: mountCapability(), readonly: true }), Code.ALREADY_EXISTS);
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
  });

  it("with a different capability on the same target answers ALREADY_EXISTS", async () => {
    const v = await staged(Mode.SINGLE_NODE_MULTI_WRITER);
    const target = d.path(uniqueName("conflict"));
    await d.client.node.nodePublishVolume({ ...v, targetPath: target, volumeCapability: mountCapability(Mode.SINGLE_NODE_MULTI_WRITER) });
    await expectCode(
      d.client.node.nodePublishVolume({ ...v, targetPath: target, volumeCapability: mountCapability(Mode.SINGLE_NODE_MULTI_WRITER, ["noexec"]) }),
      Code.ALREADY_EXISTS,
    );
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
  });

  it("SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod) refuses a second target with FAILED_PRECONDITION", async () => {
    const v = await staged(Mode.SINGLE_NODE_SINGLE_WRITER);
    const [t1, t2] = [d.path(uniqueName("pod1")), d.path(uniqueName("pod2"))];
    await d.client.node.nodePublishVolume({ ...v, targetPath: t1, volumeCapability: mountCapability(Mode.SINGLE_NODE_SINGLE_WRITER) });
    await expectCode(d.client.node.nodePublishVolume({ ...v, targetPath: t2, volumeCapability: mountCapability(Mode.SINGLE_NODE_SINGLE_WRITER) }), Code.FAILED_PRECONDITION, /one workload/);
    assert.equal(await isMounted(t2), false);
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: t1 });
  });

  it("SINGLE_NODE_MULTI_WRITER allows two targets that see each other's writes", async () => {
    const v = await staged(Mode.SINGLE_NODE_MULTI_WRITER);
    const [t1, t2] = [d.path(uniqueName("pod1")), d.path(uniqueName("pod2"))];
    for (const t of [t1, t2]) await d.client.node.nodePublishVolume({ ...v, targetPath: t, volumeCapability: mountCapability(Mode.SINGLE_NODE_MULTI_WRITER) });
    await fsp.writeFile(path.join(t1, "shared"), "hi");
    assert.equal(await fsp.readFile(path.join(t2, "shared"), "utf8"), "hi");
    for (const t of [t1, t2]) await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: t });
  });

  it("SINGLE_NODE_MULTI_WRITER onto another volume's mount or a tmpfs answers ALREADY_EXISTS, and on another volume's staging path FAILED_PRECONDITION", async () => {
    // The usual ReadWriteOnce publish reads no mount table when the target is empty (statx says so); anything there goes to the table.
    const mine = await staged(Mode.SINGLE_NODE_MULTI_WRITER);
    const theirs = await staged(Mode.SINGLE_NODE_MULTI_WRITER);
    const taken = d.path(uniqueName("pod"));
    await d.client.node.nodePublishVolume({ ...theirs, targetPath: taken, volumeCapability: mountCapability(Mode.SINGLE_NODE_MULTI_WRITER) });
    const tmpfs = d.path(uniqueName("tmpfs"));
    await fsp.mkdir(tmpfs);
    mountFs("someone-else", tmpfs, "tmpfs", 0, "size=1m");
    try {
      for (const t of [taken, tmpfs]) {
        await expectCode(d.client.node.nodePublishVolume({ ...mine, targetPath: t, volumeCapability: mountCapability(Mode.SINGLE_NODE_MULTI_WRITER) }), Code.ALREADY_EXISTS, /something else is already mounted/);
        assert.equal(readMountInfo().filter((m) => m.mountPoint === t).length, 1, `nothing was stacked on ${t}`);
      }
      await expectCode(
        d.client.node.nodePublishVolume({ volumeId: mine.volumeId, stagingTargetPath: theirs.stagingTargetPath, targetPath: d.path(uniqueName("pod")), volumeCapability: mountCapability(Mode.SINGLE_NODE_MULTI_WRITER) }),
        Code.FAILED_PRECONDITION,
        /not staged/,
      );
    } finally {
      unmount(tmpfs, { detach: true });
    }
    await d.client.node.nodeUnpublishVolume({ volumeId: theirs.volumeId, targetPath: taken });
  });

  it("before staging answers FAILED_PRECONDITION", async () => {
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;
    await expectCode(
      d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: d.path(uniqueName("nostage")), targetPath: d.path(uniqueName("t")), volumeCapability: mountCapability() }),
      Code.FAILED_PRECONDITION,
      /not staged/,
    );
  });

  it("without staging_target_path answers FAILED_PRECONDITION", async () => {
    const v = await staged();
    await expectCode(d.client.node.nodePublishVolume({ volumeId: v.volumeId, targetPath: d.path(uniqueName("t")), volumeCapability: mountCapability() }), Code.FAILED_PRECONDITION);
  });

  it("of an unknown volume answers NOT_FOUND", async () => {
    await expectCode(
      d.client.node.nodePublishVolume({ volumeId: "fake-vol-id", stagingTargetPath: d.path("s"), targetPath: d.path("t"), volumeCapability: mountCapability() }),
      Code.NOT_FOUND,
    );
  });

  it("with missing fields answers INVALID_ARGUMENT", async () => {
    const v = await staged();
    const t = d.path(uniqueName("t"));
    await expectCode(d.client.node.nodePublishVolume({ stagingTargetPath: v.stagingTargetPath, targetPath: t, volumeCapability: mountCapability() }), Code.INVALID_ARGUMENT, /volume_id/);
    await expectCode(d.client.node.nodePublishVolume({ ...v, volumeCapability: mountCapability() }), Code.INVALID_ARGUMENT, /target_path/);
    await expectCode(d.client.node.nodePublishVolume({ ...v, targetPath: t }), Code.INVALID_ARGUMENT, /volume_capability/);
    await expectCode(d.client.node.nodeUnpublishVolume({ targetPath: t }), Code.INVALID_ARGUMENT, /volume_id/);
    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId }), Code.INVALID_ARGUMENT, /target_path/);
  });

  it("refuses a mount flag that a bind mount cannot apply, with INVALID_ARGUMENT", async () => {
    const v = await staged();
    await expectCode(
      d.client.node.nodePublishVolume({ ...v, targetPath: d.path(uniqueName("t")), volumeCapability: mountCapability(Mode.SINGLE_NODE_WRITER, ["data=journal"]) }),
      Code.INVALID_ARGUMENT,
      /data=journal/,
    );
  });
});
}
