// A volume's record damaged behind the driver's back — a disk error, a hand edit; the
// driver's own writes (temp + fsync + rename) never leave one — must not keep the driver
// from starting, nor stop a pod that uses the volume from going away: one bad file on a
// node would otherwise take every volume on it down with it. The driver starts and says
// which record it cannot read; the volume's mounts, which the kernel shows without the
// record, can still be undone, and the volume deleted; every other volume goes on.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { readdirSync } from "node:fs";
import { blockCapability, destroyDriver, isMounted, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { MEMORY, NFS_LOCAL, type TestBackend } from "./backends";
import { loopsOf } from "./loop-fs";

/** Where each backend keeps the driver's record of a volume (found by the ID it holds). */
const RECORDS: Record<"memory" | "nfs", (d: DriverProcess) => string> = {
  memory: (d) => path.join(d.root, "memory", "volumes"),
  nfs: (d) => path.join(d.root, "shared"),
};

async function recordOf(dir: string, volumeId: string): Promise<string> {
  for (const f of await fsp.readdir(dir)) {
    const file = path.join(dir, f);
    if ((await fsp.readFile(file, "utf8")).includes(JSON.stringify(volumeId))) return file;
  }
  throw new Error(`no record of ${volumeId} in ${dir}`);
}

for (const backend of [MEMORY, NFS_LOCAL] as (TestBackend & { name: "memory" | "nfs" })[]) {
  describe(`A damaged volume record (${backend.name})`, () => {
    let d: DriverProcess;
    beforeEach(async () => (d = await startDriver()));
    afterEach(async () => destroyDriver(d));

    it("the driver starts and names it; the volume can still be unpublished, unstaged and deleted; another volume goes on", async function () {
      this.timeout(60_000);
      const cap = mountCapability();
      const create = async () =>
        (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap], capacityRange: { requiredBytes: 1 << 20 }, parameters: backend.parameters(d) })).volume!;
      const [damaged, other] = [await create(), await create()];
      const damagedId = damaged.volumeId!;
      const staging = d.path("stage");
      const target = d.path("target");
      await d.client.node.nodeStageVolume({ volumeId: damaged.volumeId, volumeContext: damaged.volumeContext, stagingTargetPath: staging, volumeCapability: cap });
      await d.client.node.nodePublishVolume({ volumeId: damaged.volumeId, volumeContext: damaged.volumeContext, stagingTargetPath: staging, targetPath: target, volumeCapability: cap });
      await fsp.writeFile(path.join(target, "data"), "in use");

      const record = await recordOf(RECORDS[backend.name](d), damagedId);
      await fsp.writeFile(record, '{"version":1, not json');
      await d.restart();

      const warned = d.jsonLogs().filter((l) => l.level === "warn" && (l.volumeId === damaged.volumeId || l.file === record));
      assert.equal(warned.length, 1, `one warning names it:\n${d.logs.join("\n")}`);
      assert.equal((await d.client.controller.controllerGetVolume({ volumeId: other.volumeId })).volume!.volumeId, other.volumeId, "the other volume is there");
      const listed = ((await d.client.controller.listVolumes({})).entries ?? []).map((e) => e.volume!.volumeId);
      assert.ok(listed.includes(other.volumeId), "the other volume is listed");

      await d.client.node.nodeUnpublishVolume({ volumeId: damaged.volumeId, targetPath: target });
      assert.equal(await isMounted(target), false, "unpublished");
      await d.client.node.nodeUnstageVolume({ volumeId: damaged.volumeId, stagingTargetPath: staging });
      assert.equal(await isMounted(staging), false, "unstaged");
      await d.client.controller.deleteVolume({ volumeId: damaged.volumeId });
      await d.client.controller.deleteVolume({ volumeId: damaged.volumeId }); // a retry: OK too
      assert.equal(existsSync(record), false, "its record is gone");
      if (backend.name === "memory") assert.equal(await isMounted(backend.contentDir(d, damagedId)), false, "its tmpfs is gone");
      else assert.equal(existsSync(backend.contentDir(d, damagedId)), false, "its directory on the share is gone");
      assert.equal((await d.client.controller.controllerGetVolume({ volumeId: other.volumeId })).volume!.volumeId, other.volumeId);
    });
  });
}

// A hostPath volume's record is read when a call needs it, not at the start (a node may hold
// thousands). Its node calls find its mounts from its data: a directory (dir volumes), or an
// image file (image and block volumes alike: the mounts of the loop devices backed by it).
describe("A damaged volume record (hostpath)", () => {
  let d: DriverProcess;
  beforeEach(async () => (d = await startDriver()));
  afterEach(async () => destroyDriver(d));

  for (const { layout, parameters, cap } of [
    { layout: "dir", parameters: { capacity: "none" }, cap: mountCapability() },
    { layout: "image", parameters: { capacity: "image" }, cap: mountCapability() },
    { layout: "block", parameters: {}, cap: blockCapability() },
  ]) {
    it(`a ${layout} volume: unpublished, unstaged and deleted all the same, leaving no mount and no loop device`, async function () {
      this.timeout(60_000);
      const create = async () =>
        (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap], capacityRange: { requiredBytes: 16 << 20 }, parameters })).volume!;
      const [damaged, other] = [await create(), await create()];
      const damagedId = damaged.volumeId!;
      const staging = d.path("stage");
      const target = d.path("target");
      await d.client.node.nodeStageVolume({ volumeId: damagedId, volumeContext: damaged.volumeContext, stagingTargetPath: staging, volumeCapability: cap });
      await d.client.node.nodePublishVolume({ volumeId: damagedId, volumeContext: damaged.volumeContext, stagingTargetPath: staging, targetPath: target, volumeCapability: cap });
      assert.equal(await isMounted(target), true);

      const record = path.join(d.root, "volumes", `${damagedId}.json`);
      assert.ok(existsSync(record));
      await fsp.writeFile(record, '{"version":1, not json');
      await d.restart();

      await d.client.node.nodeUnpublishVolume({ volumeId: damagedId, targetPath: target });
      assert.equal(await isMounted(target), false, "unpublished");
      assert.equal(existsSync(target), false, "what the driver made at the target is removed");
      await d.client.node.nodeUnstageVolume({ volumeId: damagedId, stagingTargetPath: staging });
      assert.equal(await isMounted(staging), false, "unstaged");
      assert.deepEqual(readdirSync(staging), [], "nothing left under the staging path");
      assert.deepEqual(loopsOf(path.join(d.root, "data", damagedId)), [], "no loop device left attached to it");
      await d.client.controller.deleteVolume({ volumeId: damagedId });
      assert.equal(existsSync(record), false, "its record is gone");
      assert.equal(existsSync(path.join(d.root, "data", damagedId)), false, "its data is gone");
      assert.equal((await d.client.controller.controllerGetVolume({ volumeId: other.volumeId! })).volume!.volumeId, other.volumeId);
    });
  }
});
