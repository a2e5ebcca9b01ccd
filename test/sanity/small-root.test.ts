// A hostPath root smaller than the driver's default size (1 GiB): a CreateVolume that names no size
// gets a capacity: none volume as large as the root (its size is a label nothing enforces), and so
// does an inline volume that names none, while the modes that enforce a size still refuse one the
// root cannot hold.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mountFs } from "../../src/mount/syscalls";
import { MS } from "../../src/mount/options";
import { blockCapability, Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
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

  it("an inline volume that names no size gets the root's size, and a retry the same volume; one asking for more is still OUT_OF_RANGE", async () => {
    const volumeId = kubeletVolumeId();
    const req = { volumeId, targetPath: d!.path(uniqueName("pod")), volumeCapability: mountCapability(), volumeContext: inline() };
    await d!.client.node.nodePublishVolume(req);
    assert.equal(JSON.parse(await fsp.readFile(`${d!.root}/volumes/${inlineStoreId(volumeId)}.json`, "utf8")).capacityBytes, await rootBytes());
    await d!.client.node.nodePublishVolume(req);
    await d!.client.node.nodeUnpublishVolume({ volumeId, targetPath: req.targetPath });
    const before = await fsp.readdir(`${d!.root}/volumes`);
    const tooLarge = { volumeId: kubeletVolumeId(), targetPath: d!.path(uniqueName("pod")), volumeCapability: mountCapability(), volumeContext: inline({ size: "1Gi" }) };
    await expectCode(d!.client.node.nodePublishVolume(tooLarge), Code.OUT_OF_RANGE, /cannot fit on this node's file system/);
    assert.deepEqual(await fsp.readdir(`${d!.root}/volumes`), before);
  });
});

describe("An inline volume that names no size, on a root that grows", () => {
  let d: DriverProcess;
  before(async () => {
    // A 256 MiB tmpfs as the driver's whole world, which a remount can make larger.
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-growing-"));
    mountFs("tmpfs", dir, "tmpfs", 0, `size=${256 * MiB},mode=0755`);
    d = await startDriver({ dir });
  });
  after(async () => destroyDriver(d));

  it("keeps the size it was made with: a retry once the root is larger is the same volume, not ALREADY_EXISTS", async () => {
    const volumeId = kubeletVolumeId();
    const req = { volumeId, targetPath: d.path(uniqueName("pod")), volumeCapability: mountCapability(), volumeContext: inline() };
    await d.client.node.nodePublishVolume(req);
    const record = `${d.root}/volumes/${inlineStoreId(volumeId)}.json`;
    assert.equal(JSON.parse(await fsp.readFile(record, "utf8")).capacityBytes, 256 * MiB);
    mountFs("tmpfs", d.dir, "tmpfs", MS.REMOUNT, `size=${512 * MiB}`);
    await d.client.node.nodePublishVolume(req);
    assert.equal(JSON.parse(await fsp.readFile(record, "utf8")).capacityBytes, 256 * MiB);
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: req.targetPath });
  });
});

/** What the kubelet sends for a pod's inline volume: its own volume ID, and the attributes. */
const kubeletVolumeId = () => `csi-${createHash("sha256").update(uniqueName()).digest("hex")}`;
const inline = (attrs: Record<string, string> = {}) => ({ "csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.name": "web-0", ...attrs });
const inlineStoreId = (volumeId: string) => "hp-" + createHash("sha256").update(`ephemeral/${volumeId}`).digest("hex").slice(0, 32);
