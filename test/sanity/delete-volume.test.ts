// DeleteVolume: idempotent, refuses volumes still mounted, removes data for real.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { Code, destroyDriver, DIR_VOLUMES, expectCode, literal, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { BACKENDS } from "./backends";

for (const b of BACKENDS) {
describe(`DeleteVolume (${b.name})`, () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  const create = async () => (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;

  it("without a volume_id answers INVALID_ARGUMENT", async () => {
    await expectCode(d.client.controller.deleteVolume({}), Code.INVALID_ARGUMENT, /volume_id is required/);
  });

  const dataDir = (id: string) => b.contentDir(d, id);

  it("removes the volume's directory and the data in it", async () => {
    const id = await create();
    const dir = dataDir(id);
    await fsp.writeFile(path.join(dir, "file"), "payload");
    await d.client.controller.deleteVolume({ volumeId: id });
    assert.equal(existsSync(dir), false);
    if (b.name === "hostpath") {
      assert.equal(existsSync(path.join(d.root, "volumes", `${id}.json`)), false);
      assert.deepEqual(await fsp.readdir(path.join(d.root, ".trash")), []);
    }
  });

  it("is idempotent: deleting twice succeeds", async () => {
    const id = await create();
    await d.client.controller.deleteVolume({ volumeId: id });
    await d.client.controller.deleteVolume({ volumeId: id });
  });

  it("of an ID that was never issued succeeds", async () => {
    await d.client.controller.deleteVolume({ volumeId: "fake-vol-id-123" });
    await d.client.controller.deleteVolume({ volumeId: "hp-00000000000000000000000000000000" });
  });

  // (A shared volume's mounts on other nodes are out of sight; those on this node count.)
  it("of a volume still staged answers FAILED_PRECONDITION and keeps the data", async () => {
    const id = await create();
    const staging = d.path(uniqueName("staging"));
    await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await fsp.writeFile(path.join(staging, "keep"), "important");
    await expectCode(d.client.controller.deleteVolume({ volumeId: id }), Code.FAILED_PRECONDITION, /still mounted/);
    assert.equal(await fsp.readFile(path.join(staging, "keep"), "utf8"), "important");
    await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath: staging });
    await d.client.controller.deleteVolume({ volumeId: id });
  });

  it("does not follow a symlink planted inside the volume", async () => {
    const id = await create();
    const outside = d.scratch(uniqueName("outside"));
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, "precious"), "keep me");
    await fsp.symlink(outside, path.join(dataDir(id), "link"));
    await d.client.controller.deleteVolume({ volumeId: id });
    assert.equal(await fsp.readFile(path.join(outside, "precious"), "utf8"), "keep me");
  });

  // (A shared volume's delete refuses it the same way; hostpath-dir-identity.test.ts has a directory put in its place.)
  if (b.name === "hostpath") it("answers NOT_FOUND and touches neither the link nor what it points at when its directory was replaced by a symlink", async () => {
    const id = await create();
    const outside = d.scratch(uniqueName("outside"));
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, "precious"), "keep me");
    const dir = dataDir(id);
    await fsp.rmdir(dir);
    await fsp.symlink(outside, dir);
    await expectCode(d.client.controller.deleteVolume({ volumeId: id }), Code.NOT_FOUND, /not the directory this driver made for it/);
    assert.equal(await fsp.readlink(dir), outside);
    assert.equal(await fsp.readFile(path.join(outside, "precious"), "utf8"), "keep me");
  });
});
}

describe("DeleteVolume of a hostPath volume whose record cannot be read", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  for (const capacity of ["none", "image"]) {
    it(`${capacity}: refused while its data is mounted, then deleted from what is on disk, with a warning`, async () => {
      const cap = mountCapability();
      const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap], parameters: { capacity } })).volume!.volumeId!;
      const stagingTargetPath = d.path(uniqueName("stage"));
      await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
      // What a disk error or a hand edit could leave: the driver's own writes never do.
      const record = path.join(d.root, "volumes", `${volumeId}.json`);
      const good = await fsp.readFile(record);
      await fsp.writeFile(record, "{ not json");
      await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.FAILED_PRECONDITION, new RegExp(`still mounted at ${literal(stagingTargetPath)}`));
      assert.ok(existsSync(path.join(d.root, "data", volumeId)), "the data stays while it is mounted");
      // Unstaging reads the record too: put it back for that, then damage it again.
      await fsp.writeFile(record, good);
      await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
      await fsp.writeFile(record, "{ not json");
      await d.client.controller.deleteVolume({ volumeId });
      assert.equal(existsSync(path.join(d.root, "data", volumeId)), false);
      assert.equal(existsSync(record), false);
      assert.ok(d.jsonLogs().some((l) => l.level === "warn" && l.volumeId === volumeId && /not valid JSON/.test(String(l.problem))));
      await d.client.controller.deleteVolume({ volumeId }); // a retry is OK
    });
  }
});
