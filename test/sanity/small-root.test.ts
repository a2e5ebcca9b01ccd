// A hostPath root smaller than the driver's default size (1 GiB): a CreateVolume that names no size
// gets a capacity: none volume as large as the root (its size is a label nothing enforces), while
// the modes that enforce a size still refuse one the root cannot hold.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import { blockCapability, Code, expectCode, mountCapability, uniqueName, type DriverProcess } from "./harness";
import { driverOnLoopFs, type LoopFs } from "./loop-fs";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe("CreateVolume on a root smaller than the default size", function () {
  this.timeout(60_000);
  let fs: LoopFs | undefined;
  let d: DriverProcess | undefined;
  driverOnLoopFs("ext4", 256 * MiB, (f, drv) => ((fs = f), (d = drv)));

  const create = (parameters: Record<string, string>, capacityRange?: { requiredBytes: number; limitBytes: number }, name = uniqueName()) =>
    d!.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], parameters, capacityRange });
  const rootBytes = async () => {
    const s = await fsp.statfs(fs!.mountPoint);
    return s.blocks * s.bsize;
  };

  it("capacity: none with no capacity range succeeds, recording the root's size; a retry returns the same volume", async () => {
    const name = uniqueName();
    const { volume } = await create({ capacity: "none" }, undefined, name);
    assert.equal(volume!.capacityBytes, await rootBytes());
    const again = await create({ capacity: "none" }, undefined, name);
    assert.deepEqual([again.volume!.volumeId, again.volume!.capacityBytes], [volume!.volumeId, volume!.capacityBytes]);
    assert.equal((await d!.client.controller.controllerGetVolume({ volumeId: volume!.volumeId })).volume!.capacityBytes, await rootBytes());
    await d!.client.controller.deleteVolume({ volumeId: volume!.volumeId });
  });

  it("capacity: none with only a limit above the root's size gets the root's size; one below it, the limit", async () => {
    assert.equal((await create({ capacity: "none" }, { requiredBytes: 0, limitBytes: 2 * GiB })).volume!.capacityBytes, await rootBytes());
    assert.equal((await create({ capacity: "none" }, { requiredBytes: 0, limitBytes: 64 * MiB })).volume!.capacityBytes, 64 * MiB);
  });

  it("capacity: none that asks for more than the root holds is still OUT_OF_RANGE", async () => {
    await expectCode(create({ capacity: "none" }, { requiredBytes: GiB, limitBytes: 0 }), Code.OUT_OF_RANGE, /cannot fit on this node's file system/);
  });

  it("image and block volumes, whose size is enforced, with no capacity range are still OUT_OF_RANGE, and nothing is made", async () => {
    const before = await fsp.readdir(`${d!.root}/volumes`);
    await expectCode(create({ capacity: "image" }), Code.OUT_OF_RANGE, /cannot fit on this node's file system/);
    await expectCode(create({}), Code.OUT_OF_RANGE, /cannot fit on this node's file system/);
    await expectCode(
      d!.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [blockCapability()] }),
      Code.OUT_OF_RANGE,
      /cannot fit on this node's file system/,
    );
    assert.deepEqual(await fsp.readdir(`${d!.root}/volumes`), before);
  });
});
