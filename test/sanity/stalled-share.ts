/**
 * Test helper: a share whose disk stops answering, for real.
 *
 * An NFS server that goes away leaves every operation that must reach it
 * asleep in the kernel. This machine has no NFS client, so the stand-in is
 * a local share whose writes cannot reach its disk: an ext2 file system on
 * a loop device whose image lives on a second loop file system, the
 * "server's disk". `fsfreeze -f` on that outer file system makes the loop
 * device's writes wait until it is thawed. The share's metadata stays in
 * memory (ext2 has no journal), so probes, mkdir and bind mounts go on as
 * before; but a flush (sync, fsync) never returns, and once a write waits
 * in the loop device, neither does a read of data that is not in the page
 * cache — exactly what a copy does on a hung NFS mount. Thawing lets it all
 * finish.
 *
 * The "server's disk" is itself an image in a tmpfs of its own, so what the
 * share flushes ends in memory: a flush through the two loop devices would
 * otherwise end in an fsync of an image on this machine's disk, which on a
 * busy shared disk waits for everything else written there (seconds, at
 * times tens of them), and the tests would time that disk rather than the
 * driver.
 *
 * Made with the ordinary tools (mkfs, mount -o loop, fsfreeze), not the
 * driver's code. A test process that ends while the disk is frozen thaws it
 * on its way out, so no sleeper is left behind.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { makeLoopFs, type LoopFs } from "./loop-fs";

export interface StalledShare {
  /** Where the share is mounted. */
  path: string;
  /** Freeze the share's disk: flushes wait from now on. */
  stall(): Promise<void>;
  /** Also make reads of uncached data wait: a flush of `file` (written here, on the share) is left waiting in the device. */
  stallReads(file: string): Promise<void>;
  /**
   * Like stallReads, with a flush of the whole share, which holds no file open: each file written since stall() is then on its
   * way to the disk, so removing it (freeing its pages) waits too.
   */
  stallFlush(): Promise<void>;
  /** Flush `file` and drop its data from the page cache (before stall()), so the next read of it must reach the disk. */
  evict(file: string): Promise<void>;
  /** Thaw: everything waiting finishes. */
  resume(): Promise<void>;
  cleanup(): Promise<void>;
}

const frozen = new Set<string>();
const memories = new Set<string>();
process.on("exit", () => {
  for (const dir of frozen) spawnSync("fsfreeze", ["-u", dir]);
  for (const dir of memories) spawnSync("umount", ["-l", dir]);
});

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")}: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

/** Unmount the in-memory disk at `dir` (if mounted) and remove its mount point. */
async function forget(dir: string): Promise<void> {
  if (memories.delete(dir)) await run("umount", ["-l", dir]).catch(() => undefined);
  await fsp.rmdir(dir).catch(() => undefined);
}

/** Make the share (an empty directory `at`, which becomes its mount point). */
export async function makeStalledShare(at: string, sizeBytes = 128 * 1024 ** 2): Promise<StalledShare> {
  // The server's disk, in memory (see above): sized for its image, which is sparse, so it holds only what is written.
  const memory = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-server-disk-"));
  let disk: LoopFs;
  try {
    await run("mount", ["-t", "tmpfs", "-o", `size=${sizeBytes + 128 * 1024 ** 2},mode=0755`, "server-disk", memory]);
    memories.add(memory);
    disk = await makeLoopFs("ext4", sizeBytes + 64 * 1024 ** 2, memory);
  } catch (err) {
    await forget(memory);
    throw err;
  }
  const image = path.join(disk.mountPoint, "share.img");
  const sleepers: ChildProcess[] = [];
  const resume = async () => {
    if (!frozen.has(disk.mountPoint)) return;
    await run("fsfreeze", ["-u", disk.mountPoint]);
    frozen.delete(disk.mountPoint);
    await Promise.all(sleepers.splice(0).map((p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.on("exit", r)))));
  };
  try {
    await fsp.writeFile(image, "");
    await fsp.truncate(image, sizeBytes);
    await run("mkfs.ext2", ["-q", "-F", image]);
    await fsp.mkdir(at, { recursive: true });
    await run("mount", ["-o", "loop", image, at]);
    await fsp.chmod(at, 0o755);
  } catch (err) {
    await disk.cleanup();
    await forget(memory);
    throw err;
  }
  /** Start a flush (sync `args`) and return once it sleeps in the kernel waiting for the device: from now on the device takes nothing else. */
  const flushWaiting = async (args: string[]) => {
    const sync = spawn("sync", args, { stdio: "ignore" });
    sleepers.push(sync);
    for (let i = 0; i < 1000 && !/^\S+ \([^)]*\) D /.test(await fsp.readFile(`/proc/${sync.pid}/stat`, "utf8").catch(() => "")); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return {
    path: at,
    async stall() {
      await run("sync", ["--file-system", at]); // what was written so far is on the disk, and stays cached
      await run("fsfreeze", ["-f", disk.mountPoint]);
      frozen.add(disk.mountPoint);
    },
    stallReads: (file: string) => flushWaiting(["--data", file]),
    stallFlush: () => flushWaiting(["--file-system", at]),
    async evict(file: string) {
      await run("sync", ["--data", file]);
      await run("dd", [`if=${file}`, "iflag=nocache", "count=0", "status=none"]);
    },
    resume,
    async cleanup() {
      await resume();
      await run("umount", ["-l", at]).catch(() => undefined);
      await disk.cleanup();
      await forget(memory);
    },
  };
}
