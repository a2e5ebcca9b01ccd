// A hostPath delete killed at any instant is finished by the next start — and never leaves the
// volume's data in data/ without its record.
//
// Every hostPath delete commits by moving the volume's data (a directory, or an image file) into
// .trash; its record is removed after that. A kill -9 right after the move leaves the record and
// .trash/<id>.delete-…, which the start-up sweep settles with the record; one right after the
// record's removal leaves the data in .trash, which the sweep empties. Image and block volumes
// used to lose their record first and keep their image in data/, and so did directory volumes
// whose record is from before identities were recorded: data without a record, which is now
// not the driver's to remove (hostpath-foreign-data.test.ts). The kill comes from a preload hook
// (crash-hook.ts) at the exact call.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { blockCapability, destroyDriver, DIR_VOLUMES, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { crashEnv } from "./crash-hook";
import type { VolumeCapability } from "../../src/gen/csi";

const MiB = 1024 * 1024;

const KINDS: { name: string; parameters: Record<string, string>; cap: VolumeCapability; older: boolean }[] = [
  { name: "an image volume", parameters: { capacity: "image" }, cap: mountCapability(), older: false },
  { name: "a block volume", parameters: { capacity: "image" }, cap: blockCapability(), older: false },
  { name: "a directory volume whose record is from before identities", parameters: {}, cap: mountCapability(), older: true },
];

const CRASHES = [
  { at: "right after its move into .trash", op: "rename", match: "/\\.trash/hp-[0-9a-f]{32}\\.delete-", recordLeft: true },
  { at: "right after its record is removed", op: "unlink", match: "/volumes/hp-[0-9a-f]{32}\\.json$", recordLeft: false },
];

describe("DeleteVolume of a hostPath volume killed part-way", () => {
  let d: DriverProcess | undefined;
  afterEach(async () => destroyDriver(d));

  for (const kind of KINDS) {
    for (const crash of CRASHES) {
      it(`${kind.name}, killed ${crash.at}: its data is in .trash, not in data/, and the next start finishes the delete`, async () => {
        d = await startDriver({ extraArgs: DIR_VOLUMES, env: crashEnv(crash.op, crash.match) });
        const req = { name: uniqueName(), volumeCapabilities: [kind.cap], capacityRange: { requiredBytes: 16 * MiB }, parameters: kind.parameters };
        const volumeId = (await d.client.controller.createVolume(req)).volume!.volumeId!;
        const data = path.join(d.root, "data", volumeId);
        const record = path.join(d.root, "volumes", `${volumeId}.json`);
        if (kind.older) {
          await fsp.writeFile(path.join(data, "old"), "the deleted volume's");
          const { dataIdentity: _, ...rest } = JSON.parse(await fsp.readFile(record, "utf8"));
          await fsp.writeFile(record, JSON.stringify(rest));
        }
        await assert.rejects(d.client.controller.deleteVolume({ volumeId }));
        await d.exit;

        assert.equal(existsSync(data), false, "the data is not left in data/");
        assert.equal(existsSync(record), crash.recordLeft);
        assert.equal((await fsp.readdir(path.join(d.root, ".trash"))).filter((n) => n.startsWith(`${volumeId}.delete-`)).length, 1, "it is in .trash");

        d.opts.env = process.env;
        await d.start();
        assert.equal(existsSync(record), false, "the delete is finished");
        assert.deepEqual(await fsp.readdir(path.join(d.root, ".trash")), []);
        assert.deepEqual(await fsp.readdir(path.join(d.root, "data")), []);
        assert.deepEqual((await d.client.controller.listVolumes({})).entries ?? [], []);
        // The name works again, for a volume of its own.
        assert.equal((await d.client.controller.createVolume(req)).volume!.volumeId, volumeId);
        if (kind.older) assert.deepEqual(await fsp.readdir(data), [], "a new volume holds nothing of the deleted one's");
        await d.client.controller.deleteVolume({ volumeId });
      });
    }
  }
});
