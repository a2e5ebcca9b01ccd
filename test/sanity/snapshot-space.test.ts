// Running out of space while copying answers RESOURCE_EXHAUSTED and leaves nothing half-made.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mountFs } from "../../src/mount/syscalls";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess, DIR_VOLUMES } from "./harness";
import { createVolume, MiB, volumeDir } from "./snapshot-helpers";

describe("Snapshots and restores on a full file system", () => {
  let d: DriverProcess;
  before(async () => {
    // A 24 MiB tmpfs as the driver's whole world: no reflinks, so every copy needs real space.
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-full-"));
    mountFs("tmpfs", dir, "tmpfs", 0, "size=24m,mode=0755");
    d = await startDriver({ dir , extraArgs: DIR_VOLUMES });
  });
  after(async () => destroyDriver(d));

  const leftovers = async () => [
    ...(await fsp.readdir(path.join(d.root, ".tmp"))),
    ...(await fsp.readdir(path.join(d.root, "snapshots", ".tmp"))),
    ...(await fsp.readdir(path.join(d.root, "snapshots", ".views"))),
  ];

  it("CreateSnapshot of a volume larger than the free space answers RESOURCE_EXHAUSTED", async () => {
    const volumeId = await createVolume(d, { capacityRange: { requiredBytes: 16 * MiB } });
    await fsp.writeFile(path.join(volumeDir(d, volumeId), "big"), Buffer.alloc(14 * MiB, 1));
    await expectCode(d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: volumeId }), Code.RESOURCE_EXHAUSTED, /not enough space/);
    assert.deepEqual(await leftovers(), []);
    assert.deepEqual((await d.client.controller.listSnapshots({})).entries ?? [], []);
    await fsp.rm(path.join(volumeDir(d, volumeId), "big"));
  });

  it("a clone larger than the free space answers RESOURCE_EXHAUSTED and no volume is made", async () => {
    const volumeId = await createVolume(d, { capacityRange: { requiredBytes: 16 * MiB } });
    await fsp.writeFile(path.join(volumeDir(d, volumeId), "big"), Buffer.alloc(14 * MiB, 2));
    const before = (await d.client.controller.listVolumes({})).entries!.length;
    const req = {
      name: uniqueName("clone"),
      volumeCapabilities: [mountCapability()],
      capacityRange: { requiredBytes: 16 * MiB },
      volumeContentSource: { volume: { volumeId } },
    };
    await expectCode(d.client.controller.createVolume(req), Code.RESOURCE_EXHAUSTED, /not enough space/);
    assert.equal((await d.client.controller.listVolumes({})).entries!.length, before);
    assert.deepEqual(await leftovers(), []);
  });
});
