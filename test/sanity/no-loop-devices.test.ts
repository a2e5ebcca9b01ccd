// Image and block volumes need loop devices. A container's /dev may lack /dev/loop-control
// although the kernel has loop devices (the driver makes the node, as it does for /dev/loopN);
// a kernel without the loop module has none at all, and staging says so plainly.
//
// These tests remove and replace /dev/loop-control, so they run only inside the throwaway root
// (test/sandbox/throwaway-root, which `npm test` uses), whose /dev is a tmpfs of its own;
// elsewhere they skip. They put the node back as it was whatever happens.
import assert from "node:assert/strict";
import { existsSync, lstatSync, rmSync, statfsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { Code, destroyDriver, expectCode, isMounted, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

const TMPFS_MAGIC = 0x01021994;
const LOOP_CONTROL = "/dev/loop-control";
const contained = process.env.CSI_LAB_SANDBOX === "1" && statfsSync("/").type === TMPFS_MAGIC && statfsSync("/dev").type === TMPFS_MAGIC;

/** Put /dev/loop-control back as the kernel names it (10:237), or as `minor` says. */
function makeLoopControl(minor = 237): void {
  rmSync(LOOP_CONTROL, { force: true });
  execFileSync("mknod", ["-m", "660", LOOP_CONTROL, "c", "10", String(minor)]);
}

(contained && existsSync(LOOP_CONTROL) ? describe : describe.skip)("Loop devices missing on the node (in a throwaway root)", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: ["--default-capacity-mode", "image"] })));
  after(async () => {
    makeLoopControl();
    await destroyDriver(d);
  });

  const cap = { ...mountCapability(), mount: { fsType: "ext4", mountFlags: [], volumeMountGroup: "" } };
  const create = async () =>
    (await d.client.controller.createVolume({ name: uniqueName("img"), volumeCapabilities: [cap], capacityRange: { requiredBytes: 1 << 20 } })).volume!.volumeId!;

  it("a /dev without loop-control (a container's): the driver makes the node and stages", async () => {
    rmSync(LOOP_CONTROL);
    const volumeId = await create();
    const stagingTargetPath = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    assert.ok(await isMounted(stagingTargetPath));
    const st = lstatSync(LOOP_CONTROL);
    assert.ok(st.isCharacterDevice() && st.rdev === (10 << 8) + 237, "/dev/loop-control is 10:237 again");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.deleteVolume({ volumeId });
  });

  it("no loop devices at all (a kernel without the loop module): FAILED_PRECONDITION saying so, nothing mounted", async () => {
    makeLoopControl(254); // a misc minor no driver has: opening it fails as a missing module's would (ENODEV)
    try {
      const volumeId = await create();
      const stagingTargetPath = d.path(uniqueName("stage"));
      await expectCode(d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap }), Code.FAILED_PRECONDITION, /cannot attach loop devices \(\/dev\/loop-control: ENODEV\).*modprobe loop/);
      assert.equal(await isMounted(stagingTargetPath), false);
      await d.client.controller.deleteVolume({ volumeId });
    } finally {
      makeLoopControl();
    }
  });
});
