// The StorageClass parameter `capacity` (quota | image | none) and the
// driver's --default-capacity-mode decide how a volume's size is enforced.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { Code, destroyDriver, DriverProcess, expectCode, mountCapability, startDriver, uniqueName } from "./harness";

const MiB = 1024 * 1024;

async function layoutOf(d: DriverProcess, id: string): Promise<string> {
  const meta = JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${id}.json`), "utf8"));
  return `${meta.layout ?? "dir"}${meta.quota ? "+quota" : ""}`;
}

describe("The capacity parameter", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  const create = (parameters: Record<string, string>) =>
    d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 8 * MiB }, parameters });

  it("image makes an image volume, none a plain directory", async () => {
    assert.equal(await layoutOf(d, (await create({ capacity: "image" })).volume!.volumeId!), "image");
    assert.equal(await layoutOf(d, (await create({ capacity: "none" })).volume!.volumeId!), "dir");
  });

  it("defaults, on a root without quotas, to image: the size is a limit unless asked otherwise", async () => {
    assert.equal(await layoutOf(d, (await create({})).volume!.volumeId!), "image");
    const log = d.jsonLogs().find((l) => l.msg === "capacity")!;
    assert.match(String(log.quotas), /^none \(the root is on/);
  });

  it("quota on a root without quotas answers RESOURCE_EXHAUSTED (another node may have them), saying why", async () => {
    await expectCode(create({ capacity: "quota" }), Code.RESOURCE_EXHAUSTED, /capacity: quota is not available on this node: the root is on/);
  });

  it("an unknown mode answers INVALID_ARGUMENT, naming the modes", async () => {
    await expectCode(create({ capacity: "unlimited" }), Code.INVALID_ARGUMENT, /quota, image, none/);
  });

  it("is part of what defines a volume: the same name with another mode answers ALREADY_EXISTS", async () => {
    const name = uniqueName();
    const args = { name, volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 8 * MiB } };
    await d.client.controller.createVolume({ ...args, parameters: { capacity: "image" } });
    await expectCode(d.client.controller.createVolume({ ...args, parameters: { capacity: "none" } }), Code.ALREADY_EXISTS, /different parameters/);
  });

  it("ValidateVolumeCapabilities does not confirm other parameters than the volume's", async () => {
    const id = (await create({ capacity: "image" })).volume!.volumeId!;
    const res = await d.client.controller.validateVolumeCapabilities({ volumeId: id, volumeCapabilities: [mountCapability()], parameters: { capacity: "none" } });
    assert.equal(res.confirmed, undefined);
  });
});

describe("--default-capacity-mode", () => {
  let d: DriverProcess | undefined;
  afterEach(async () => destroyDriver(d));

  it("none makes plain directories when the StorageClass says nothing", async () => {
    d = await startDriver({ extraArgs: ["--default-capacity-mode", "none"] });
    const { volume } = await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] });
    assert.equal(await layoutOf(d, volume!.volumeId!), "dir");
  });

  it("quota on a root without quotas stops the driver at start-up, saying why", async () => {
    d = new DriverProcess(await fsp.mkdtemp("/tmp/csi-lab-test-"), { extraArgs: ["--default-capacity-mode", "quota"] });
    await assert.rejects(d.start(), /--default-capacity-mode quota, but the root is on/);
    assert.equal(existsSync(d.root), false, "refused before the root was made");
  });

  it("anything else is refused at start-up", async () => {
    d = new DriverProcess(await fsp.mkdtemp("/tmp/csi-lab-test-"), { extraArgs: ["--default-capacity-mode", "maybe"] });
    await assert.rejects(d.start(), /--default-capacity-mode must be one of auto, quota, image, none/);
  });
});
