// An unmount acts on the mount the driver proved is the volume's, not on whatever is on top at
// the path when umount2(2) runs (src/node/volume-owner.ts, docs/security.md). strace holds each
// of the driver's umount2 calls at its entry (`-e inject=umount2:delay_enter=…`); while one is
// held, "another program" mounts a tmpfs on top of the target. The old driver then unmounted
// that tmpfs in the volume's place and answered OK, the volume's own mount left under it.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { promises as fsp, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { mountFs, unmount } from "../../src/mount/syscalls";
import { Code, destroyDriver, DIR_VOLUMES, expectCode, isMounted, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

/** umount2's number on this machine's architecture, as /proc/<tid>/syscall shows it. */
const UMOUNT2 = process.arch === "x64" ? 166 : process.arch === "arm64" ? 39 : undefined;
/** How long strace holds each umount2: long enough to mount a tmpfs meanwhile. */
const HOLD_US = 2_000_000;

describe("An unmount leaves alone what was mounted on top while it ran", function () {
  this.timeout(60_000);
  let d: DriverProcess;
  before(async function () {
    if (UMOUNT2 === undefined) this.skip();
    d = await startDriver({ extraArgs: DIR_VOLUMES });
  });
  after(async () => destroyDriver(d));

  for (const nth of [1, 2]) {
    it(`NodeUnpublishVolume with a stranger's mount stacked during the driver's umount2 #${nth}: FAILED_PRECONDITION naming it, and it stays`, async () => {
      const cap = mountCapability();
      const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap] })).volume!.volumeId!;
      const stagingTargetPath = d.path(uniqueName("staging"));
      const targetPath = d.path(uniqueName("target"));
      await fsp.mkdir(stagingTargetPath);
      await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
      await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap });

      const log = d.scratch(uniqueName("strace"));
      const strace = await holdUmount2(d.proc.pid!, log);
      let stacked = false;
      try {
        const call = d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
        const settled = call.then(
          () => undefined,
          () => undefined,
        );
        assert.ok(await inUmount2(d.proc.pid!, log, nth, settled), `the driver made fewer than ${nth} umount2 calls`);
        mountFs("stranger", targetPath, "tmpfs", 0, "size=1m");
        stacked = true;
        await fsp.writeFile(path.join(targetPath, "theirs"), "not the driver's");
        await expectCode(call, Code.FAILED_PRECONDITION, /tmpfs from stranger .*not volume .*left alone/);
      } finally {
        await release(strace);
      }
      try {
        assert.equal(await fsp.readFile(path.join(targetPath, "theirs"), "utf8"), "not the driver's", "the stranger's mount was unmounted");
      } finally {
        if (stacked) unmount(targetPath, { detach: true });
      }
      // With the stranger gone, the retry finds the volume's own mount and undoes it.
      await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
      assert.equal(await isMounted(targetPath), false);
      await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    });
  }
});

/** strace attached to every thread of `pid`, holding each umount2 at its entry; resolves once attached. */
async function holdUmount2(pid: number, log: string): Promise<ChildProcess> {
  const argv = ["-f", "-e", "trace=umount2", "-e", `inject=umount2:delay_enter=${HOLD_US}`, "-e", "signal=none", "-o", log, "-p", String(pid)];
  const proc = spawn("strace", argv, { stdio: ["ignore", "ignore", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    let err = "";
    proc.stderr!.on("data", (chunk: Buffer) => {
      err += chunk.toString();
      if (/Process \d+ attached/.test(err)) resolve(); // "… attached with N threads": all of them
    });
    proc.on("exit", (code) => reject(new Error(`strace ended (${code}) before it attached: ${err.trim()}`)));
  });
  return proc;
}

async function release(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await exited;
}

/**
 * Wait until a thread of `pid` is held at the entry of its `nth` umount2 (nth - 1 finished, as
 * strace's log shows, and one entered, as /proc shows); false if `settled` comes first.
 */
async function inUmount2(pid: number, log: string, nth: number, settled: Promise<void>): Promise<boolean> {
  let done = false;
  void settled.then(() => (done = true));
  for (;;) {
    if (done) return false;
    if (finishedUmount2(log) === nth - 1 && threadInUmount2(pid)) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
}

function finishedUmount2(log: string): number {
  let text = "";
  try {
    text = readFileSync(log, "utf8");
  } catch {
    return 0;
  }
  return (text.match(/umount2\(.*\) += /g) ?? []).length + (text.match(/<\.\.\. umount2 resumed>.* += /g) ?? []).length;
}

function threadInUmount2(pid: number): boolean {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      if (readFileSync(`/proc/${pid}/task/${tid}/syscall`, "utf8").split(" ")[0] === String(UMOUNT2)) return true;
    } catch {
      // the thread ended
    }
  }
  return false;
}
