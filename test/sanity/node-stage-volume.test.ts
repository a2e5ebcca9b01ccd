// NodeStageVolume / NodeUnstageVolume: a real bind mount, visible in mountinfo.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "../../src/mount/mountinfo";
import { Code, destroyDriver, expectCode, isMounted, Mode, mountCapability, startDriver, uniqueName, DIR_VOLUMES, type DriverProcess } from "./harness";
import { BACKENDS } from "./backends";

for (const b of BACKENDS) {
describe(`NodeStageVolume and NodeUnstageVolume (${b.name})`, () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  const newVolume = async () => (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;

  it("binds the volume's directory at the staging path", async () => {
    const id = await newVolume();
    const staging = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: staging, volumeCapability: mountCapability() });
    const entry = (await readMountInfo()).find((m) => m.mountPoint === staging);
    assert.ok(entry, "staging path is a mount point");
    const dir = b.contentDir(d, id);
    // A bind of the volume's directory: mountinfo shows that directory as the mount's root (a tmpfs's own root is "/").
    if (!b.ownFileSystem) assert.ok(entry.root.endsWith(dir.slice(d.dir.length)), entry.root);
    else assert.equal(entry.root, "/");
    await fsp.writeFile(path.join(staging, "hello"), "world");
    assert.equal(await fsp.readFile(path.join(dir, "hello"), "utf8"), "world");
    await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath: staging });
    assert.equal(await isMounted(staging), false);
    assert.ok(existsSync(staging), "the CO's staging directory is left in place");
  });

  it("is idempotent", async () => {
    const id = await newVolume();
    const staging = d.path(uniqueName("stage"));
    const req = { volumeId: id, stagingTargetPath: staging, volumeCapability: mountCapability() };
    await d.client.node.nodeStageVolume(req);
    await d.client.node.nodeStageVolume(req);
    assert.equal((await readMountInfo()).filter((m) => m.mountPoint === staging).length, 1, "mounted once, not twice");
    await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath: staging });
    await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath: staging });
  });

  it("with a different capability on an already staged path answers ALREADY_EXISTS", async () => {
    const id = await newVolume();
    const staging = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: staging, volumeCapability: mountCapability(Mode.SINGLE_NODE_READER_ONLY) }),
      Code.ALREADY_EXISTS,
    );
    await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath: staging });
  });

  it("of a second volume on a staged path answers ALREADY_EXISTS", async () => {
    const [a, b] = [await newVolume(), await newVolume()];
    const staging = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId: a, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await expectCode(d.client.node.nodeStageVolume({ volumeId: b, stagingTargetPath: staging, volumeCapability: mountCapability() }), Code.ALREADY_EXISTS);
    await d.client.node.nodeUnstageVolume({ volumeId: a, stagingTargetPath: staging });
  });

  it("of an unknown volume answers NOT_FOUND and mounts nothing", async () => {
    const staging = d.path(uniqueName("stage"));
    await expectCode(d.client.node.nodeStageVolume({ volumeId: "fake-vol-id", stagingTargetPath: staging, volumeCapability: mountCapability() }), Code.NOT_FOUND);
    assert.equal(await isMounted(staging), false);
  });

  it("refuses a staging path that is a symlink", async () => {
    const id = await newVolume();
    const link = d.path(uniqueName("link"));
    await fsp.symlink("/tmp", link);
    await expectCode(d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: link, volumeCapability: mountCapability() }), Code.FAILED_PRECONDITION, /symbolic link/);
    assert.equal(await isMounted("/tmp"), (await readMountInfo()).some((m) => m.mountPoint === "/tmp"));
  });

  it("with an access mode no volume of its kind can serve answers FAILED_PRECONDITION naming the volume", async function () {
    // A shared volume serves every access mode; a node-local one (hostpath, memory) no multi-node one.
    if (b.name === "nfs") this.skip();
    const id = await newVolume();
    const staging = d.path(uniqueName("stage"));
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: staging, volumeCapability: mountCapability(Mode.MULTI_NODE_MULTI_WRITER) }),
      Code.FAILED_PRECONDITION,
      new RegExp(`^volume ${id}: access mode MULTI_NODE_MULTI_WRITER is not supported`),
    );
    assert.equal(await isMounted(staging), false);
  });

  it("with missing fields answers INVALID_ARGUMENT", async () => {
    const id = await newVolume();
    const staging = d.path(uniqueName("stage"));
    await expectCode(d.client.node.nodeStageVolume({ stagingTargetPath: staging, volumeCapability: mountCapability() }), Code.INVALID_ARGUMENT, /volume_id/);
    await expectCode(d.client.node.nodeStageVolume({ volumeId: id, volumeCapability: mountCapability() }), Code.INVALID_ARGUMENT, /staging_target_path/);
    await expectCode(d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: staging }), Code.INVALID_ARGUMENT, /volume_capability/);
    await expectCode(d.client.node.nodeUnstageVolume({ stagingTargetPath: staging }), Code.INVALID_ARGUMENT, /volume_id/);
    await expectCode(d.client.node.nodeUnstageVolume({ volumeId: id }), Code.INVALID_ARGUMENT, /staging_target_path/);
  });
});
}
