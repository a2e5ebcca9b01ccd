// Holding a volume still for a copy: a frozen file system is thawed on every way
// out — the copy's end, its failure, the deadline, the freeze limit — and, when
// the driver itself is gone, by the watchdog or by the start-up sweep.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Code } from "../../src/csi/errors";
import { freezeFs, openMountedFs, startThawWatchdog } from "../../src/mount/freeze";
import { fileIdentity } from "../../src/mount/loop";
import { readMountInfo } from "../../src/mount/mountinfo";
import { holdStill, thawLeftovers } from "../../src/storage/hold-still";

const MiB = 1024 ** 2;

describe("Holding a volume still for a copy", function () {
  this.timeout(30_000);
  let dir: string;
  let image: string;
  let mnt: string;
  let markers: string;
  const probes: ChildProcess[] = [];

  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-hold-"));
    image = path.join(dir, "volume.img");
    mnt = path.join(dir, "mnt");
    markers = path.join(dir, "markers");
    await fsp.mkdir(mnt);
    await fsp.mkdir(markers);
    await fsp.writeFile(image, "");
    await fsp.truncate(image, 64 * MiB);
    execFileSync("mkfs.ext4", ["-q", "-F", image]);
    execFileSync("mount", ["-o", "loop", image, mnt]); // autoclear: the device goes with the unmount
  });
  afterEach(async () => {
    spawnSync("fsfreeze", ["--unfreeze", mnt], { stdio: "ignore" }); // whatever a failed test left frozen
    for (const p of probes.splice(0)) if (p.exitCode === null) await new Promise((r) => p.once("exit", r));
    spawnSync("umount", [mnt]);
    await fsp.rm(dir, { recursive: true, force: true });
  });

  const content = () => ({ path: image, layout: "image" as const, live: true });

  /** Can a process write into the file system (at `at`) within `ms`? (A write into a frozen one waits for the thaw.) */
  async function writable(ms = 500, at = mnt): Promise<boolean> {
    const p = spawn("sh", ["-c", `echo x > ${at}/probe-${probes.length}`], { stdio: "ignore" });
    probes.push(p);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      p.once("exit", () => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  it("freezes the mounted file system for the copy only, and leaves no marker", async () => {
    const seen = await holdStill([content()], { markersDir: markers }, async () => {
      assert.equal((await fsp.readdir(markers)).length, 1, "a marker names the frozen file system during the copy");
      return writable();
    });
    assert.equal(seen, false, "writers wait during the copy");
    assert.equal(await writable(), true, "and go on after it");
    assert.deepEqual(await fsp.readdir(markers), []);
  });

  it("freezes the file system of the image the content names (`image`), not one mounted from another file at its path", async () => {
    // Someone else's image, mounted, put at the path; the volume's own image (still mounted) moved away.
    const theirs = path.join(dir, "theirs.img");
    const theirMnt = path.join(dir, "their-mnt");
    await fsp.mkdir(theirMnt);
    await fsp.writeFile(theirs, "");
    await fsp.truncate(theirs, 64 * MiB);
    execFileSync("mkfs.ext4", ["-q", "-F", theirs]);
    execFileSync("mount", ["-o", "loop", theirs, theirMnt]);
    try {
      const recorded = fileIdentity(image);
      await fsp.rename(image, image + ".moved");
      await fsp.rename(theirs, image);
      const seen = await holdStill([{ ...content(), image: () => recorded }], { markersDir: markers }, async () => ({
        ours: await writable(),
        theirs: await writable(2000, theirMnt),
      }));
      assert.deepEqual(seen, { ours: false, theirs: true }, "the volume's file system is frozen for the copy, theirs never");
    } finally {
      spawnSync("fsfreeze", ["--unfreeze", theirMnt], { stdio: "ignore" });
      spawnSync("umount", [theirMnt]);
    }
  });

  it("thaws when the copy fails", async () => {
    await assert.rejects(holdStill([content()], { markersDir: markers }, async () => Promise.reject(new Error("cp failed"))), /cp failed/);
    assert.equal(await writable(), true);
    assert.deepEqual(await fsp.readdir(markers), []);
  });

  it("thaws at the freeze limit, aborting the copy with FAILED_PRECONDITION", async () => {
    const started = Date.now();
    let aborted = false;
    const copy = (signal: AbortSignal) =>
      new Promise<void>((_, reject) => {
        signal.addEventListener("abort", () => {
          aborted = true;
          reject(signal.reason as Error);
        });
      });
    await assert.rejects(holdStill([content()], { markersDir: markers, maxFreezeMs: 300 }, copy), (e: { code: number; message: string }) => {
      assert.equal(e.code, Code.FAILED_PRECONDITION);
      assert.match(e.message, /held frozen/);
      return true;
    });
    assert.ok(aborted);
    assert.ok(Date.now() - started < 5_000);
    assert.equal(await writable(), true);
  });

  it("thaws when the call's signal aborts (its deadline passed)", async () => {
    const call = new AbortController();
    setTimeout(() => call.abort(new Error("deadline")), 200);
    await assert.rejects(
      holdStill([content()], { markersDir: markers, signal: call.signal }, (signal) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason as Error)))),
      /deadline/,
    );
    assert.equal(await writable(), true);
  });

  it("copies a file system someone else froze, and leaves it frozen (theirs to thaw)", async () => {
    execFileSync("fsfreeze", ["--freeze", mnt]);
    await holdStill([content()], { markersDir: markers }, async () => undefined);
    assert.equal(await writable(), false, "still frozen");
    execFileSync("fsfreeze", ["--unfreeze", mnt]);
  });

  it("the watchdog thaws the file system when the driver never comes back to it", async () => {
    const device = readMountInfo().find((m) => m.mountPoint === mnt)!.device;
    const fd = openMountedFs(mnt, device);
    try {
      const watchdog = await startThawWatchdog([fd], 1000);
      await freezeFs(fd, mnt);
      assert.equal(await writable(300), false, "frozen");
      assert.equal(await writable(3000), true, "thawed by the watchdog after its limit");
      await watchdog.release(true); // it is gone already: releasing is harmless
    } finally {
      closeSync(fd);
    }
  });

  it("the watchdog thaws at once when told the driver's own thaw failed", async () => {
    const device = readMountInfo().find((m) => m.mountPoint === mnt)!.device;
    const fd = openMountedFs(mnt, device);
    try {
      const watchdog = await startThawWatchdog([fd], 60_000);
      await freezeFs(fd, mnt);
      await watchdog.release(false);
      assert.equal(await writable(), true);
    } finally {
      closeSync(fd);
    }
  });

  it("the start-up sweep thaws what a marker names, if it is still mounted from that image, and drops the markers", async () => {
    const device = readMountInfo().find((m) => m.mountPoint === mnt)!.device;
    await fsp.writeFile(path.join(markers, "left.json"), JSON.stringify({ filesystems: [{ image, device, mountPoint: mnt }] }));
    await fsp.writeFile(path.join(markers, "other.json"), JSON.stringify({ filesystems: [{ image: path.join(dir, "gone.img"), device, mountPoint: mnt }] }));
    await fsp.writeFile(path.join(markers, "torn.json"), "{");
    execFileSync("fsfreeze", ["--freeze", mnt]);
    assert.deepEqual(await thawLeftovers(markers), [mnt]);
    assert.equal(await writable(), true);
    assert.deepEqual(await fsp.readdir(markers), []);
  });
});
