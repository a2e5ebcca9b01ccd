// ControllerUnpublishVolume of an image volume judges "still mounted on this node" by the image its record names, not by the
// file at data/<id>.
//
// A detach must wait for the node's unpublish and unstage: the volume's mounts on this node are the mounts of its loop
// devices. The old code asked which loop devices were attached to the file at the name: with someone else's file swapped in
// there, the volume's own mounts were not seen and the volume was detached while still mounted; and their mount of their file
// kept the volume attached once its own mounts were gone. Now they are the loops of the recorded image wherever it is
// (volume-dir.ts: imageOfRecord), as on the node (image-loop-identity.test.ts).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { unmount } from "../../src/mount/syscalls";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

const MiB = 1024 * 1024;

describe("ControllerUnpublishVolume of an image volume whose image file is swapped for someone else's", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: ["--default-capacity-mode", "image", "--enable-attach"] })));
  after(async () => destroyDriver(d));

  const publishedTo = async (volumeId: string) => (await d.client.controller.controllerGetVolume({ volumeId })).status!.publishedNodeIds;

  it("refuses while the volume's own image is mounted, and is not held back by their mount of their file", async () => {
    const cap = mountCapability();
    const req = { name: uniqueName("img"), volumeCapabilities: [cap], capacityRange: { requiredBytes: 16 * MiB } };
    const volumeId = (await d.client.controller.createVolume(req)).volume!.volumeId!;
    const { publishContext } = await d.client.controller.controllerPublishVolume({ volumeId, nodeId: d.nodeId, volumeCapability: cap });
    const stagingTargetPath = d.path(uniqueName("staging"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap, publishContext });

    const image = path.join(d.root, "data", volumeId);
    const theirs = d.scratch(uniqueName("theirs"));
    await fsp.writeFile(theirs, "");
    await fsp.truncate(theirs, 16 * MiB);
    execFileSync("mkfs.ext4", ["-q", "-F", theirs], { stdio: "ignore" });
    await fsp.rename(image, image + ".moved");
    await fsp.rename(theirs, image);

    const detach = d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId });
    await expectCode(detach, Code.FAILED_PRECONDITION, new RegExp(`still mounted on node .* at ${stagingTargetPath}`));
    assert.deepEqual(await publishedTo(volumeId), [d.nodeId], "the volume stays attached while it is staged");

    // Their file, at the volume's name, mounted by them; the volume's own stage undone.
    const theirTarget = d.path(uniqueName("target"));
    await fsp.mkdir(theirTarget);
    execFileSync("mount", ["-o", "loop", image, theirTarget]);
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId });
    assert.deepEqual(await publishedTo(volumeId), [], "their mount is not the volume's: it is detached");

    unmount(theirTarget);
    await fsp.rename(image, theirs);
    await fsp.rename(image + ".moved", image);
    await d.client.controller.deleteVolume({ volumeId });
  });
});
