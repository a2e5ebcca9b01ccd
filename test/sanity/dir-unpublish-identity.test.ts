// ControllerUnpublishVolume and DeleteVolume of a directory volume judge "still mounted on this node" by the directory its
// record names, not by the directory at data/<id>.
//
// A detach (and a delete) must wait for the node's unpublish and unstage: the volume's mounts on this node are the binds of
// its directory. The old code asked for the binds of whatever directory was at the name: with someone else's swapped in there
// (the volume's own moved beside it), the volume's own stage was not seen and the volume was detached while still staged;
// their bind of their directory kept the volume attached once its own mounts were gone; and with nothing at the name, the
// delete of a volume still staged went ahead. Now they are the binds whose root is the recorded directory, wherever it is
// (volume-dir.ts: mountsOfDirOfRecord), as on the node (hostpath-dir-identity.test.ts); image volumes:
// image-unpublish-identity.test.ts.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { bindMount, unmount } from "../../src/mount/syscalls";
import { Code, destroyDriver, DIR_VOLUMES, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("ControllerUnpublishVolume and DeleteVolume of a directory volume whose directory is swapped for someone else's", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: [...DIR_VOLUMES, "--enable-attach"] })));
  after(async () => destroyDriver(d));

  const publishedTo = async (volumeId: string) => (await d.client.controller.controllerGetVolume({ volumeId })).status!.publishedNodeIds;

  /** An attached dir volume staged on this node; where its directory is. */
  async function stagedVolume(): Promise<{ volumeId: string; dir: string; stagingTargetPath: string }> {
    const cap = mountCapability();
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName("dir"), volumeCapabilities: [cap] })).volume!.volumeId!;
    const { publishContext } = await d.client.controller.controllerPublishVolume({ volumeId, nodeId: d.nodeId, volumeCapability: cap });
    const stagingTargetPath = d.path(uniqueName("staging"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap, publishContext });
    return { volumeId, dir: path.join(d.root, "data", volumeId), stagingTargetPath };
  }

  it("ControllerUnpublishVolume refuses while the volume's own directory is staged, and is not held back by their bind of theirs", async () => {
    const { volumeId, dir, stagingTargetPath } = await stagedVolume();
    const theirs = d.scratch(uniqueName("theirs"));
    await fsp.mkdir(theirs);
    await fsp.rename(dir, dir + ".moved");
    await fsp.rename(theirs, dir);

    const detach = d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId });
    await expectCode(detach, Code.FAILED_PRECONDITION, new RegExp(`still mounted on node .* at ${stagingTargetPath}`));
    assert.deepEqual(await publishedTo(volumeId), [d.nodeId], "the volume stays attached while it is staged");

    // Their directory, at the volume's name, bound by them; the volume's own stage undone.
    const theirTarget = d.path(uniqueName("target"));
    await fsp.mkdir(theirTarget);
    bindMount(dir, theirTarget);
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId });
    assert.deepEqual(await publishedTo(volumeId), [], "their bind is not the volume's: it is detached");

    unmount(theirTarget);
    await fsp.rename(dir, theirs);
    await fsp.rename(dir + ".moved", dir);
    await d.client.controller.deleteVolume({ volumeId });
    assert.equal(existsSync(theirs), true, "their directory stays");
  });
});

describe("DeleteVolume of a directory volume whose directory is moved from its name", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  it("refuses while the volume's own directory, moved from its name, is staged", async () => {
    const cap = mountCapability();
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName("dir"), volumeCapabilities: [cap] })).volume!.volumeId!;
    const stagingTargetPath = d.path(uniqueName("staging"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    const dir = path.join(d.root, "data", volumeId);
    await fsp.rename(dir, dir + ".moved");

    await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.FAILED_PRECONDITION, new RegExp(`still mounted at ${stagingTargetPath}`));
    assert.ok(existsSync(path.join(d.root, "volumes", `${volumeId}.json`)), "the volume still exists");
    assert.ok(existsSync(dir + ".moved"), "and so does its directory");

    await fsp.rename(dir + ".moved", dir);
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.deleteVolume({ volumeId });
    assert.equal(existsSync(dir), false);
  });
});
