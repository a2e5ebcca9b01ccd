// A file system frozen for a copy is never left frozen: not when the call's deadline
// passes mid-copy, not when the driver is killed mid-copy (its watchdog thaws), not
// even when the watchdog dies with it (the restarted driver thaws).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import { COPY_CASES, PodVolume, thawUnder, Writer } from "./copy-cases";
import { Code, destroyDriver, startDriver, uniqueName, type DriverProcess } from "./harness";
import { waitFor } from "./snapshot-helpers";

const MiB = 1024 ** 2;
const IMAGE = COPY_CASES.find((c) => c.layout === "image" && !c.root && !c.fsType)!;

/** Our own processes (children of `parent`, or any) whose command line mentions `text`. */
function processes(text: string, parent?: number): number[] {
  const out: number[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(text)) continue;
      const ppid = Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      if (parent === undefined || ppid === parent) out.push(Number(pid));
    } catch {
      // exited meanwhile
    }
  }
  return out.filter((p) => p !== process.pid);
}

/** Is the file system at `mountPoint` frozen? (FIFREEZE answers EBUSY if it is; if it was not, this froze it and thaws it again.) */
function isFrozen(mountPoint: string): boolean {
  if (spawnSync("fsfreeze", ["--freeze", mountPoint]).status !== 0) return true;
  spawnSync("fsfreeze", ["--unfreeze", mountPoint]);
  return false;
}

/** Does the writer make no progress for `ms`? (It waits inside a frozen file system.) */
async function stalled(w: Writer, ms = 500): Promise<boolean> {
  const at = w.latest;
  await new Promise((r) => setTimeout(r, ms));
  return w.latest === at;
}

describe("A file system frozen for a copy is always thawed", function () {
  this.timeout(120_000);
  let d: DriverProcess;
  let source: PodVolume;
  let writer: Writer | undefined;
  beforeEach(async () => {
    d = await startDriver();
    source = await PodVolume.create(d, IMAGE);
    // Enough data that the copy of the image takes a moment, to be caught.
    for (let i = 0; i < 40; i++) writeFileSync(path.join(source.target, `bulk-${i}`), Buffer.alloc(4 * MiB, i));
    writer = new Writer("files", source.target);
    await writer.advance(20);
  });
  afterEach(async () => {
    thawUnder(d.dir);
    await writer?.stop();
    await destroyDriver(d);
  });

  // cp copies the volume's image through the driver's descriptor of it, proven the recorded one (volume-dir.ts: withVolumeImage).
  const copying = () => `/proc/${d.proc.pid}/fd/`;

  /** Start a CreateSnapshot and stop its copier mid-copy, so the freeze lasts until something ends it. */
  async function snapshotStuckInCopy(timeoutMs?: number): Promise<{ call: Promise<unknown>; copier: number }> {
    const call = d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: source.volumeId }, timeoutMs ? { timeoutMs } : {});
    call.catch(() => undefined);
    let copier: number | undefined;
    assert.ok(
      await waitFor(async () => {
        copier = processes(copying(), d.proc.pid)[0]; // cp, started by the driver
        if (copier !== undefined) process.kill(copier, "SIGSTOP");
        return copier !== undefined;
      }, 10_000, 1),
      "the copy of the image was never seen",
    );
    assert.ok(await stalled(writer!), "the writer waits: the file system is frozen");
    return { call, copier: copier! };
  }

  it("the call's deadline passing mid-copy thaws at once; the copy is killed and nothing is left; a retry succeeds", async () => {
    const { call } = await snapshotStuckInCopy(3000);
    await assert.rejects(call, (e: ServiceError) => e.code === Code.DEADLINE_EXCEEDED);
    await writer!.advance(20, 3000);
    assert.ok(await waitFor(async () => processes(copying()).filter((p) => p !== d.proc.pid).length === 0, 3000), "the copier was killed");
    assert.deepEqual(readdirSync(path.join(d.root, "snapshots", ".frozen")), []);
    assert.deepEqual(readdirSync(path.join(d.root, "snapshots", ".tmp")), []);
    assert.equal((await d.client.controller.listSnapshots({})).entries!.length, 0);
    await source.snapshot();
    await writer!.advance(20);
  });

  it("kill -9 of the driver mid-copy: its watchdog thaws the file system at once, no restart needed", async () => {
    await snapshotStuckInCopy();
    d.proc.kill("SIGKILL");
    await d.exit;
    await writer!.advance(20, 3000);
    await d.start();
    assert.deepEqual(readdirSync(path.join(d.root, "snapshots", ".frozen")), [], "the restart swept the marker");
    assert.equal((await d.client.controller.listSnapshots({})).entries!.length, 0, "no half snapshot");
  });

  it("kill -9 of the driver and of its watchdog mid-copy: the restarted driver thaws the file system", async () => {
    await snapshotStuckInCopy();
    const watchdogs = processes("thaw-watchdog", d.proc.pid);
    assert.equal(watchdogs.length, 1, "one watchdog for the hold");
    process.kill(watchdogs[0]!, "SIGKILL");
    d.proc.kill("SIGKILL");
    await d.exit;
    assert.ok(await stalled(writer!, 1500), "still frozen: nobody is left to thaw it");
    await d.start();
    await writer!.advance(20, 3000);
    assert.ok(d.logs.some((l) => l.includes("thawed a file system a crash had left frozen")));
    assert.deepEqual(readdirSync(path.join(d.root, "snapshots", ".frozen")), []);
  });

  it("kill -9 mid-copy of a file system someone else froze: neither the watchdog nor the restarted driver thaws it", async () => {
    assert.equal(spawnSync("fsfreeze", ["--freeze", source.target]).status, 0, "an admin's fsfreeze");
    await snapshotStuckInCopy();
    const watchdogs = processes("thaw-watchdog", d.proc.pid);
    assert.equal(watchdogs.length, 1, "one watchdog for the hold");
    d.proc.kill("SIGKILL");
    await d.exit;
    const watchdog = watchdogs[0]!;
    assert.ok(await waitFor(async () => !processes("thaw-watchdog").includes(watchdog), 3000), "the watchdog has done its work and gone");
    assert.ok(isFrozen(source.target), "the watchdog left the admin's freeze alone");
    await d.start();
    assert.ok(isFrozen(source.target), "the start-up sweep left the admin's freeze alone");
    assert.deepEqual(readdirSync(path.join(d.root, "snapshots", ".frozen")), [], "the restart swept the marker");
    assert.ok(await stalled(writer!), "the writer still waits for the admin's thaw");
  });
});
