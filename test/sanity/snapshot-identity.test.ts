// A snapshot's content is the directory (or file) CreateSnapshot made, not whatever is at snapshots/data/<id>.
//
// As for a hostPath volume's data (hostpath-dir-identity.test.ts, hostpath-foreign-data.test.ts): the record
// names the content's identity; DeleteSnapshot moves the content into .trash first, checks what it moved, and
// puts anything else back (never over what took the name meanwhile), answering NOT_FOUND with nothing
// deleted; a restore copies only the proven content, through its descriptor; and the start-up sweep leaves
// what no record names in the snapshot data directory, naming it in a warning at every start. The old code
// removed all of it: the sweep whatever had no record, DeleteSnapshot whatever was at the name, CreateSnapshot
// whatever stood at its own ID's name, and a restore copied whatever was there.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { SnapshotStore } from "../../src/storage/snapshot-store";
import { Code, destroyDriver, DIR_VOLUMES, expectCode, mountCapability, shellQuote, uniqueName, type DriverProcess } from "./harness";
import { snapshotDir, volumeDir, volumeWithSnapshot } from "./snapshot-helpers";
import { startSwapDriver } from "./swap-driver";

describe("A snapshot's content, and what no snapshot record names", () => {
  let d: DriverProcess;
  let swapFile: string;
  before(async () => ({ d, swapFile } = await startSwapDriver(DIR_VOLUMES)));
  after(async () => destroyDriver(d));

  const data = (...parts: string[]) => path.join(d.root, "snapshots", "data", ...parts);
  const record = (id: string) => path.join(d.root, "snapshots", "meta", `${id}.json`);
  const trash = () => fsp.readdir(path.join(d.root, "snapshots", ".trash"));
  const foreignWarnings = () => d.jsonLogs().filter((l) => l.level === "warn" && /no snapshot record names/.test(String(l.msg)));
  const keep = async (dir: string) => {
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, "theirs"), "keep");
  };
  const theirs = (dir: string) => fsp.readFile(path.join(dir, "theirs"), "utf8");

  /** A snapshot, and someone else's directory on the same disk. */
  async function snapshotAndStranger(): Promise<{ snapshotId: string; content: string; stranger: string }> {
    const { snapshotId } = await volumeWithSnapshot(d);
    const stranger = d.scratch(uniqueName("theirs"));
    await keep(stranger);
    return { snapshotId, content: snapshotDir(d, snapshotId), stranger };
  }
  const swap = async (content: string, stranger: string) => {
    await fsp.rename(content, content + ".moved");
    await fsp.rename(stranger, content);
  };
  const swapBack = async (content: string, stranger: string) => {
    await fsp.rename(content, stranger);
    await fsp.rename(content + ".moved", content);
  };
  const restore = (snapshotId: string) =>
    d.client.controller.createVolume({ name: uniqueName("restored"), volumeCapabilities: [mountCapability()], volumeContentSource: { snapshot: { snapshotId } } });

  it("the start-up sweep leaves each entry of the snapshot data directory that no record names, whole, and names it in a warning — at every start", async () => {
    const outside = d.scratch(uniqueName("outside"));
    await keep(outside);
    const strangers = {
      dir: data(SnapshotStore.prototype.idForName(uniqueName("older"))), // shaped like a snapshot's, as an older version's cut-off delete left it
      file: data(SnapshotStore.prototype.idForName(uniqueName("image"))),
      link: data(SnapshotStore.prototype.idForName(uniqueName("link"))),
      named: data("someone-elses"),
    };
    await d.stop();
    await keep(strangers.dir);
    await fsp.writeFile(strangers.file, "keep");
    await fsp.symlink(outside, strangers.link);
    await fsp.mkdir(strangers.named);
    await d.start();

    for (let start = 0; start < 2; start++) {
      assert.equal(await theirs(strangers.dir), "keep");
      assert.equal(await fsp.readFile(strangers.file, "utf8"), "keep");
      assert.equal(await fsp.readlink(strangers.link), outside);
      assert.equal(await theirs(outside), "keep");
      assert.ok(existsSync(strangers.named));
      const named = foreignWarnings().map((l) => l.path);
      for (const p of Object.values(strangers)) assert.ok(named.includes(p), `a warning names ${p}: ${JSON.stringify(foreignWarnings())}`);
      assert.deepEqual((await d.client.controller.listSnapshots({})).entries ?? [], [], "none of it is a snapshot");
      await d.restart();
    }
    for (const p of Object.values(strangers)) await fsp.rm(p, { recursive: true });
  });

  it("CreateSnapshot answers ALREADY_EXISTS naming what is at its snapshot's name, and leaves it; once it is gone, the name works", async () => {
    const { volumeId } = await volumeWithSnapshot(d);
    const name = uniqueName("snap");
    const id = SnapshotStore.prototype.idForName(name);
    await keep(data(id));
    const create = d.client.controller.createSnapshot({ name, sourceVolumeId: volumeId });
    await expectCode(create, Code.ALREADY_EXISTS, new RegExp(`${data(id)} already holds something that no snapshot record names`));
    assert.equal(await theirs(data(id)), "keep");
    assert.equal(existsSync(record(id)), false, "no snapshot was made");
    await fsp.rm(data(id), { recursive: true });
    assert.equal((await d.client.controller.createSnapshot({ name, sourceVolumeId: volumeId })).snapshot!.snapshotId, id);
  });

  it("content swapped for another directory: DeleteSnapshot answers NOT_FOUND and deletes nothing, a restore copies nothing; swapped back, both work", async () => {
    const { snapshotId, content, stranger } = await snapshotAndStranger();
    const meta = JSON.parse(await fsp.readFile(record(snapshotId), "utf8"));
    assert.equal(meta.contentIdentity.ino, String((await fsp.stat(content, { bigint: true })).ino), "the record names its content");
    await swap(content, stranger);
    await expectCode(restore(snapshotId), Code.FAILED_PRECONDITION, /is not the directory this driver made for it/);
    await expectCode(d.client.controller.deleteSnapshot({ snapshotId }), Code.NOT_FOUND, /is not the directory this driver made for it.*nothing was deleted/);
    assert.equal(await theirs(content), "keep", "their directory is where it was, whole");
    assert.ok(existsSync(record(snapshotId)), "the snapshot still exists");
    assert.deepEqual(await trash(), []);

    await swapBack(content, stranger);
    const restored = (await restore(snapshotId)).volume!.volumeId!;
    assert.match(await fsp.readFile(path.join(volumeDir(d, restored), "hello.txt"), "utf8"), /from the source volume/);
    await d.client.controller.deleteSnapshot({ snapshotId });
    assert.equal(existsSync(content), false);
    assert.equal(await theirs(stranger), "keep");
  });

  it("DeleteSnapshot with the swap made just before its move: what was moved is put back, NOT_FOUND, nothing deleted", async () => {
    const { snapshotId, content, stranger } = await snapshotAndStranger();
    await fsp.writeFile(swapFile, `move\nmv ${shellQuote(content)} ${shellQuote(content + ".moved")}\nmv ${shellQuote(stranger)} ${shellQuote(content)}\n`);
    await expectCode(d.client.controller.deleteSnapshot({ snapshotId }), Code.NOT_FOUND, /replaced by another directory while it was being deleted/);
    assert.equal(existsSync(swapFile), false, "the swap was made");
    assert.equal(await theirs(content), "keep", "their directory is back where it was, whole");
    assert.ok(existsSync(path.join(content + ".moved", "hello.txt")), "the snapshot's own content is untouched");
    assert.deepEqual(await trash(), [], "nothing of theirs is left in the trash");
    assert.ok(existsSync(record(snapshotId)), "the snapshot still exists");

    await swapBack(content, stranger);
    await d.client.controller.deleteSnapshot({ snapshotId });
    assert.equal(existsSync(content), false);
  });

  it("a restore with the content swapped just before the copy starts copies the snapshot's own content, not theirs", async () => {
    const { snapshotId, content, stranger } = await snapshotAndStranger();
    await fsp.writeFile(swapFile, `cp\nmv ${shellQuote(content)} ${shellQuote(content + ".moved")}\nmv ${shellQuote(stranger)} ${shellQuote(content)}\n`);
    const restored = (await restore(snapshotId)).volume!.volumeId!;
    assert.equal(existsSync(swapFile), false, "the swap was made");
    assert.deepEqual(await fsp.readdir(volumeDir(d, restored)), ["hello.txt"], "the copy is of the snapshot's content");
    await swapBack(content, stranger);
    await d.client.controller.deleteSnapshot({ snapshotId });
  });

  // DeleteSnapshot moves the content into .trash (its commit point), checks what it moved, and only then removes
  // the record. A crash in between leaves both; the move may have caught another directory before the check saw it.
  it("a delete cut off between its move and the record's removal is settled at the next start: finished if it moved the content, else put back — never over a newcomer", async () => {
    const cutOff = (id: string) => path.join(d.root, "snapshots", ".trash", `${id}.delete-cut`);
    const own = await snapshotAndStranger();
    const caught = await snapshotAndStranger();
    const besides = await snapshotAndStranger();
    await d.stop();
    await fsp.rename(own.content, cutOff(own.snapshotId));
    for (const s of [caught, besides]) {
      await fsp.rename(s.content, d.scratch(uniqueName("own"))); // the snapshot's own, out of the way
      await fsp.rename(s.stranger, cutOff(s.snapshotId));
    }
    await fsp.mkdir(besides.content); // and an empty directory at that one's name since: what a plain rename replaces
    await d.start();

    assert.equal(existsSync(record(own.snapshotId)), false, "the delete of the snapshot's own content is finished");
    assert.deepEqual(await trash(), []);
    assert.equal(await theirs(caught.content), "keep", "another directory is put back at the name");
    assert.ok(existsSync(record(caught.snapshotId)), "and that snapshot stays");
    assert.deepEqual(await fsp.readdir(besides.content), [], "the newcomer is not replaced");
    const aside = (await fsp.readdir(data())).filter((n) => n.startsWith(`${besides.snapshotId}.not-deleted-`));
    assert.equal(aside.length, 1, "the caught one is put beside it");
    assert.equal(await theirs(data(aside[0]!)), "keep");
    await d.restart();
    assert.equal(await theirs(data(aside[0]!)), "keep", "and no later sweep removes it");
    assert.ok(foreignWarnings().some((l) => l.path === data(aside[0]!)), "it is named in a warning");
    await fsp.rm(data(aside[0]!), { recursive: true });
  });

  it("a record written before identities were recorded is used by its content's name, as before", async () => {
    const { snapshotId, content } = await snapshotAndStranger();
    const meta = JSON.parse(await fsp.readFile(record(snapshotId), "utf8"));
    delete meta.contentIdentity;
    await fsp.writeFile(record(snapshotId), JSON.stringify(meta));
    const restored = (await restore(snapshotId)).volume!.volumeId!;
    assert.deepEqual(await fsp.readdir(volumeDir(d, restored)), ["hello.txt"]);
    await d.client.controller.deleteSnapshot({ snapshotId });
    assert.equal(existsSync(content), false);
    assert.equal(existsSync(record(snapshotId)), false);
  });
});
