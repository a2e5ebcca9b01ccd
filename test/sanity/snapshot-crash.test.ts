// kill -9 during a snapshot, a restore or a group snapshot leaves nothing half-made, and retries converge.
import assert from "node:assert/strict";
import { promises as fsp, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess, DIR_VOLUMES } from "./harness";
import { crashEnv } from "./crash-hook";
import { createSnapshot, createVolume, describeTree, snapshotDir, volumeDir, waitFor, withoutInodes } from "./snapshot-helpers";

/** Enough content that copying it takes a while: 1,500 files of 64 KiB. */
async function fillBig(dir: string): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  for (let d = 0; d < 15; d++) {
    await fsp.mkdir(path.join(dir, `d${d}`));
    await Promise.all(Array.from({ length: 100 }, (_, i) => fsp.writeFile(path.join(dir, `d${d}`, `f${i}`), chunk)));
  }
}

/** Processes whose command line mentions `text` (a copier still running after its driver died). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text)) pids.push(Number(pid));
    } catch {
      // exited meanwhile
    }
  }
  return pids.filter((p) => p !== process.pid);
}

/** Wait until a copy into `tmpDir` is under way, then kill -9 the driver; returns once it is dead and restarted. */
async function killDuringCopy(d: DriverProcess, tmpDir: string, call: Promise<unknown>): Promise<void> {
  const started = await waitFor(async () => {
    for (const entry of await fsp.readdir(tmpDir)) if ((await fsp.readdir(path.join(tmpDir, entry)).catch(() => [])).length > 0) return true;
    return false;
  });
  assert.ok(started, "the copy never started");
  // Freeze the copier so it cannot finish on its own: only the parent-death
  // signal the driver gave it can end it now.
  const copiers = processesMentioning(d.root).filter((p) => p !== d.proc.pid);
  assert.ok(copiers.length > 0, "no copier process found");
  for (const pid of copiers) process.kill(pid, "SIGSTOP");
  d.proc.kill("SIGKILL");
  await call.catch(() => undefined);
  await d.exit;
  const alive = () => copiers.filter((pid) => processesMentioning(d.root).includes(pid));
  const died = await waitFor(async () => alive().length === 0, 3000, 20);
  for (const pid of alive()) process.kill(pid, "SIGKILL");
  assert.ok(died, "a copier outlived the driver");
  await d.start();
  assert.deepEqual(await fsp.readdir(tmpDir), [], `${tmpDir} was swept`);
}

describe("Crashes during snapshots and restores", () => {
  let d: DriverProcess;
  let source: string;
  let expected: ReturnType<typeof withoutInodes>;
  beforeEach(async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    source = await createVolume(d);
    await fillBig(volumeDir(d, source));
    expected = withoutInodes(await describeTree(volumeDir(d, source)));
  });
  afterEach(async () => destroyDriver(d));

  it("kill -9 during a restore leaves no half volume; the retry makes a whole one", async () => {
    const snapshotId = await createSnapshot(d, source);
    const req = { name: uniqueName("restore"), volumeCapabilities: [mountCapability()], volumeContentSource: { snapshot: { snapshotId } } };
    await killDuringCopy(d, path.join(d.root, ".tmp"), d.client.controller.createVolume(req));

    const volumes = (await d.client.controller.listVolumes({})).entries!.map((e) => e.volume!.volumeId!);
    const data = await fsp.readdir(path.join(d.root, "data"));
    assert.deepEqual(data.sort(), volumes.slice().sort(), "every data directory has its record and vice versa");
    for (const v of volumes) if (v !== source) assert.deepEqual(withoutInodes(await describeTree(volumeDir(d, v))), expected, "a volume that exists is whole");

    const restored = (await d.client.controller.createVolume(req)).volume!.volumeId!;
    assert.deepEqual(withoutInodes(await describeTree(volumeDir(d, restored))), expected);
  });

  it("kill -9 during a snapshot leaves no half snapshot; the retry makes a whole one", async () => {
    const req = { name: uniqueName("snap"), sourceVolumeId: source };
    await killDuringCopy(d, path.join(d.root, "snapshots", ".tmp"), d.client.controller.createSnapshot(req));

    const listed = (await d.client.controller.listSnapshots({})).entries!.map((e) => e.snapshot!.snapshotId!);
    assert.deepEqual((await fsp.readdir(path.join(d.root, "snapshots", "data"))).sort(), listed.slice().sort());
    for (const s of listed) assert.deepEqual(withoutInodes(await describeTree(snapshotDir(d, s))), expected);
    assert.deepEqual(await fsp.readdir(path.join(d.root, "snapshots", ".views")), [], "no copy view is left mounted");

    const snapshotId = (await d.client.controller.createSnapshot(req)).snapshot!.snapshotId!;
    assert.deepEqual(withoutInodes(await describeTree(snapshotDir(d, snapshotId))), expected);
  });

  it("a torn snapshot record does not stop the driver; the snapshot answers INTERNAL and the others work", async () => {
    const good = await createSnapshot(d, source);
    const torn = await createSnapshot(d, source);
    await d.stop();
    await fsp.writeFile(path.join(d.root, "snapshots", "meta", `${torn}.json`), '{"version": 1, "snapsh');
    await d.start();
    await expectCode(d.client.controller.getSnapshot({ snapshotId: torn }), Code.INTERNAL, /not valid JSON/);
    assert.equal((await d.client.controller.getSnapshot({ snapshotId: good })).snapshot!.snapshotId, good);
    await fsp.access(snapshotDir(d, torn)); // its content is kept for a person to look at
  });

  it("members of a group snapshot that never committed are removed at start-up", async () => {
    const other = await createVolume(d);
    const g = (await d.client.groupController.createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: [source, other] })).groupSnapshot!;
    await d.stop();
    // What a crash before the commit point (or just after a delete's) leaves: members without their group's record.
    await fsp.rm(path.join(d.root, "snapshots", "groups", `${g.groupSnapshotId}.json`));
    await d.start();
    for (const s of g.snapshots!) {
      await assert.rejects(fsp.access(path.join(d.root, "snapshots", "meta", `${s.snapshotId}.json`)), /ENOENT/);
      await assert.rejects(fsp.access(snapshotDir(d, s.snapshotId!)), /ENOENT/);
    }
    assert.deepEqual((await d.client.controller.listSnapshots({})).entries ?? [], []);
  });

  it("kill -9 after a group's first member is committed: after the restart no member and no note of the group are left", async () => {
    await destroyDriver(d);
    d = await startDriver({ extraArgs: DIR_VOLUMES, env: crashEnv("rename", "/snapshots/meta/snap-[0-9a-f]{32}\\.json$") });
    const volumes = [await createVolume(d), await createVolume(d)];
    await assert.rejects(d.client.groupController.createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes }));
    await d.exit;
    d.opts.env = process.env;
    await d.start();
    for (const sub of ["groups", "meta", "data"]) assert.deepEqual(await fsp.readdir(path.join(d.root, "snapshots", sub)), [], sub);
  });

  it("kill -9 just after a group delete's commit point: after the restart the group, its members and its note are gone", async () => {
    // This driver dies right after the group's record is renamed to the note of its deletion.
    await destroyDriver(d);
    d = await startDriver({ extraArgs: DIR_VOLUMES, env: crashEnv("rename", "/snapshots/groups/group-[0-9a-f]{32}\\.json -> ") });
    const volumes = [await createVolume(d), await createVolume(d)];
    const g = (await d.client.groupController.createVolumeGroupSnapshot({ name: uniqueName("group"), sourceVolumeIds: volumes })).groupSnapshot!;
    const snapshotIds = g.snapshots!.map((s) => s.snapshotId!);
    await assert.rejects(d.client.groupController.deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds }));
    await d.exit;
    d.opts.env = process.env;
    await d.start();
    await expectCode(d.client.groupController.getVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId }), Code.NOT_FOUND);
    assert.deepEqual(await fsp.readdir(path.join(d.root, "snapshots", "groups")), []);
    for (const s of g.snapshots!) {
      await assert.rejects(fsp.access(path.join(d.root, "snapshots", "meta", `${s.snapshotId}.json`)), /ENOENT/);
      await assert.rejects(fsp.access(snapshotDir(d, s.snapshotId!)), /ENOENT/);
    }
  });

  it("a delete whose content cannot be moved away keeps the snapshot whole; one killed right after the move is finished at the next start", async () => {
    // The move into .trash is the delete's commit point; the record goes after it. A move that fails leaves both
    // (the old order, record first, left content at data/<id> without a record, which a new snapshot of the name
    // then had to remove). This driver dies right after the second move into .trash (the first fails).
    await destroyDriver(d);
    d = await startDriver({ extraArgs: DIR_VOLUMES, env: crashEnv("rename", "/snapshots/data/snap-[0-9a-f]{32} -> .*/snapshots/\\.trash/", 2) });
    const volume = await createVolume(d);
    await fsp.writeFile(path.join(volumeDir(d, volume), "f"), "old\n");
    const name = uniqueName("snap");
    const snapshotId = await createSnapshot(d, volume, name);
    const record = path.join(d.root, "snapshots", "meta", `${snapshotId}.json`);

    const trash = path.join(d.root, "snapshots", ".trash");
    await fsp.rm(trash, { recursive: true });
    await fsp.writeFile(trash, ""); // the move fails (ENOTDIR)
    await assert.rejects(d.client.controller.deleteSnapshot({ snapshotId }));
    await fsp.rm(trash);
    await fsp.mkdir(trash);
    assert.equal((await d.client.controller.getSnapshot({ snapshotId })).snapshot?.snapshotId, snapshotId, "the snapshot still exists");
    assert.equal(await fsp.readFile(path.join(snapshotDir(d, snapshotId), "f"), "utf8"), "old\n", "whole");
    assert.equal(await createSnapshot(d, volume, name), snapshotId, "the same name finds it");

    await assert.rejects(d.client.controller.deleteSnapshot({ snapshotId })); // killed right after the move
    await d.exit;
    d.opts.env = process.env;
    await d.start();
    await expectCode(d.client.controller.getSnapshot({ snapshotId }), Code.NOT_FOUND);
    await assert.rejects(fsp.access(record), /ENOENT/);
    await assert.rejects(fsp.access(snapshotDir(d, snapshotId)), /ENOENT/);
    assert.deepEqual(await fsp.readdir(trash), []);
  });
});
