// What is in <root>/data without a volume record is not the driver's to remove.
//
// Every hostPath delete moves the volume's data into .trash before its record goes, and every
// create commits its record before its data reaches data/, so nothing the driver does leaves
// data there without a record. What is there without one was put there by someone else — or
// is what an older version's delete left when it was cut off (those removed the record first).
// The start-up sweep used to remove all of it, taking it for an interrupted delete, and
// CreateVolume removed whatever stood at its own ID's name. Now both leave it: the sweep names
// it in a warning at every start, and CreateVolume answers ALREADY_EXISTS naming it — also
// when it appears just before the create's data is renamed into place (which used to replace it).
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { HostPathStore } from "../../src/backends/hostpath/store";
import { Code, destroyDriver, DIR_VOLUMES, expectCode, mountCapability, shellQuote, uniqueName, type DriverProcess } from "./harness";
import { startSwapDriver } from "./swap-driver";

const MiB = 1024 * 1024;

describe("What no hostPath volume record names, in data/", () => {
  let d: DriverProcess;
  let swapFile: string;
  before(async () => ({ d, swapFile } = await startSwapDriver(DIR_VOLUMES)));
  after(async () => destroyDriver(d));

  const data = (...parts: string[]) => path.join(d.root, "data", ...parts);
  const foreignWarnings = () => d.jsonLogs().filter((l) => l.level === "warn" && /no volume record names/.test(String(l.msg)));

  it("the start-up sweep leaves each where it is, whole, and names it in a warning — at every start", async () => {
    const outside = d.scratch(uniqueName("outside"));
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, "theirs"), "keep");
    const olderLeftover = data(HostPathStore.idForName(uniqueName("older"))); // an older version's delete, cut off after its record went
    const strangers = {
      dir: olderLeftover,
      file: data(HostPathStore.idForName(uniqueName("image"))), // shaped like an image volume's
      link: data(HostPathStore.idForName(uniqueName("link"))),
      named: data("someone-elses"),
    };
    await d.stop();
    await fsp.mkdir(strangers.dir);
    await fsp.writeFile(path.join(strangers.dir, "theirs"), "keep");
    await fsp.writeFile(strangers.file, "keep");
    await fsp.symlink(outside, strangers.link);
    await fsp.mkdir(strangers.named);
    await d.start();

    for (let start = 0; start < 2; start++) {
      assert.equal(await fsp.readFile(path.join(strangers.dir, "theirs"), "utf8"), "keep");
      assert.equal(await fsp.readFile(strangers.file, "utf8"), "keep");
      assert.equal(await fsp.readlink(strangers.link), outside);
      assert.equal(await fsp.readFile(path.join(outside, "theirs"), "utf8"), "keep");
      assert.ok(existsSync(strangers.named));
      const named = foreignWarnings().map((l) => l.path);
      for (const p of Object.values(strangers)) assert.ok(named.includes(p), `a warning names ${p}: ${JSON.stringify(foreignWarnings())}`);
      assert.deepEqual((await d.client.controller.listVolumes({})).entries ?? [], [], "none of it is a volume");
      await d.restart();
    }
    for (const p of Object.values(strangers)) await fsp.rm(p, { recursive: true });
  });

  for (const layout of ["dir", "image"] as const) {
    const parameters: Record<string, string> = layout === "image" ? { capacity: "image" } : {};
    const stranger = async (p: string) => {
      if (layout === "dir") {
        await fsp.mkdir(p);
        await fsp.writeFile(path.join(p, "theirs"), "keep");
      } else {
        await fsp.writeFile(p, "keep");
      }
    };
    const theirsAt = (p: string) => fsp.readFile(layout === "dir" ? path.join(p, "theirs") : p, "utf8");

    it(`CreateVolume (${layout}) answers ALREADY_EXISTS naming what is at its volume's name, and leaves it; once it is gone, the name works`, async () => {
      const req = { name: uniqueName(layout), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 16 * MiB }, parameters };
      const id = HostPathStore.idForName(req.name);
      await stranger(data(id));
      await expectCode(d.client.controller.createVolume(req), Code.ALREADY_EXISTS, new RegExp(`${data(id)} already holds something that no volume record names`));
      assert.equal(await theirsAt(data(id)), "keep");
      assert.equal(existsSync(path.join(d.root, "volumes", `${id}.json`)), false, "no volume was made");
      assert.deepEqual(await fsp.readdir(path.join(d.root, ".tmp")), []);

      await fsp.rm(data(id), { recursive: true });
      assert.equal((await d.client.controller.createVolume(req)).volume!.volumeId, id);
      await d.client.controller.deleteVolume({ volumeId: id });
    });

    it(`CreateVolume (${layout}) whose volume's name is taken just before its data is renamed there: ALREADY_EXISTS, and the newcomer stays`, async () => {
      // An empty directory or a file at the name: what a plain rename replaces without a word.
      const req = { name: uniqueName(layout), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 16 * MiB }, parameters };
      if (layout === "image") {
        // The first image of a size makes its template, and renames it into place: that rename is not the one wanted here.
        const warm = await d.client.controller.createVolume({ ...req, name: uniqueName("warm") });
        await d.client.controller.deleteVolume({ volumeId: warm.volume!.volumeId });
      }
      const id = HostPathStore.idForName(req.name);
      // The next rename the driver makes is the commit of the volume's record; its data is renamed into place right after.
      const make = layout === "dir" ? `mkdir ${shellQuote(data(id))}` : `printf keep > ${shellQuote(data(id))}`;
      await fsp.writeFile(swapFile, `move\n${make}\n`);
      await expectCode(d.client.controller.createVolume(req), Code.ALREADY_EXISTS, /already holds something that no volume record names/);
      assert.equal(existsSync(swapFile), false, "the name was taken at that moment");
      const st = await fsp.lstat(data(id));
      if (layout === "dir") assert.deepEqual([st.isDirectory(), await fsp.readdir(data(id))], [true, []], "their empty directory is still there");
      else assert.equal(await fsp.readFile(data(id), "utf8"), "keep", "their file is still there, whole");
      assert.equal(existsSync(path.join(d.root, "volumes", `${id}.json`)), false, "the commit was undone");
      assert.deepEqual(await fsp.readdir(path.join(d.root, ".tmp")), []);
      await fsp.rm(data(id), { recursive: true });
    });
  }
});
