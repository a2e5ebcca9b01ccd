// An image volume's `mode` is set on the root of its own file system, wherever that is mounted —
// through a descriptor proven to be that mount's root, never through the mount point's name.
//
// The mount point is found in the mount table; by the time it is opened, the mount may be gone
// and the directory under it (the kubelet's staging directory) is what a name would reach. A
// preload hook (swap-hook.ts) unmounts the volume just as the driver opens its mount point to
// set the mode: the moment a test cannot hit by timing.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import { destroyDriver, isMounted, mountCapability, shellQuote, uniqueName, type DriverProcess } from "./harness";
import { startSwapDriver } from "./swap-driver";

const MiB = 1024 * 1024;

describe("ControllerModifyVolume (mode) of a staged image volume unmounted just before the chmod", () => {
  let d: DriverProcess;
  let swapFile: string;
  before(async () => ({ d, swapFile } = await startSwapDriver(["--default-capacity-mode", "image"])));
  after(async () => destroyDriver(d));

  it("leaves the directory under the mount alone, and the next stage gives the file system's root the mode", async () => {
    const cap = mountCapability();
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName("img"), volumeCapabilities: [cap], capacityRange: { requiredBytes: 64 * MiB } }))
      .volume!.volumeId!;
    const stagingTargetPath = d.path(uniqueName("staging"));
    await fsp.mkdir(stagingTargetPath, { mode: 0o750 }); // the kubelet's directory, as the CO makes it
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    const modeAt = async (p: string) => (await fsp.stat(p)).mode & 0o7777;
    assert.equal(await modeAt(stagingTargetPath), 0o777, "the image's own root, mounted there");

    await fsp.writeFile(swapFile, `open ${stagingTargetPath}\numount ${shellQuote(stagingTargetPath)}\n`);
    await d.client.controller.controllerModifyVolume({ volumeId, mutableParameters: { mode: "0700" } });
    assert.equal(existsSync(swapFile), false, "the unmount was made");
    assert.equal(await isMounted(stagingTargetPath), false);
    assert.equal(await modeAt(stagingTargetPath), 0o750, "the staging directory under the mount keeps its mode");

    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    assert.equal(await modeAt(stagingTargetPath), 0o700, "staged again, the file system's root takes the mode");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.deleteVolume({ volumeId });
  });
});
