/**
 * Test helper: a temporary file system on a loop device, to run the driver
 * on a root of a chosen kind — XFS or ext4 with project quotas, btrfs with
 * quotas, plain ext4.
 *
 * Made with the ordinary tools (mkfs, mount -o loop, btrfs quota enable),
 * not with the driver's own code, so a bug in the driver cannot hide
 * behind a bug in its test set-up. `mount -o loop` attaches the device
 * with autoclear, so unmounting is all the cleanup a device needs; the
 * image lives in a scratch directory removed with it. Every file system
 * made is also unmounted when the test process exits, whatever happened.
 *
 * A machine without the tools for a kind (xfsprogs and btrfs-progs are
 * not on a stock Debian), or a kernel that cannot mount what was asked
 * (this one may be built without XFS quota support, for instance), makes
 * `makeLoopFs` throw `UnsupportedFs`, which tests turn into a skip with
 * the reason.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { destroyDriver, detachLoopsUnder, startDriver, unmountUnder, type DriverProcess } from "./harness";
import { missingPrograms, skipUnlessInstalled } from "./programs";

export type LoopFsKind = "ext4" | "xfs" | "ext4-prjquota" | "xfs-prjquota" | "btrfs" | "btrfs-quota";

export class UnsupportedFs extends Error {}

export interface LoopFs {
  kind: LoopFsKind;
  /** Where the file system is mounted. */
  mountPoint: string;
  /** A scratch directory inside it, for a driver's socket and root. */
  scratch: string;
  cleanup(): Promise<void>;
}

const live = new Set<string>();
process.on("exit", () => {
  for (const dir of live) {
    spawnSync("umount", ["-l", path.join(dir, "mnt")]);
    spawnSync("rm", ["-rf", dir]);
  }
});

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")}: ${String(stderr).trim() || err.message}`));
      else resolve(String(stdout));
    });
  });
}

const MKFS: Record<LoopFsKind, [string, string[]]> = {
  ext4: ["mkfs.ext4", ["-q", "-F"]],
  "ext4-prjquota": ["mkfs.ext4", ["-q", "-F", "-O", "quota,project"]],
  xfs: ["mkfs.xfs", ["-q", "-f"]],
  "xfs-prjquota": ["mkfs.xfs", ["-q", "-f"]],
  btrfs: ["mkfs.btrfs", ["-q", "-f"]],
  "btrfs-quota": ["mkfs.btrfs", ["-q", "-f"]],
};

/** Programs needed besides mkfs: btrfs(8) turns quotas on. */
const ALSO_NEEDS: Partial<Record<LoopFsKind, string[]>> = { "btrfs-quota": ["btrfs"] };

/** Make a file system of `kind` on a loop device whose image is a file in a fresh directory under `parent` (default: the temp directory). */
export async function makeLoopFs(kind: LoopFsKind, sizeBytes: number, parent = os.tmpdir()): Promise<LoopFs> {
  const missing = missingPrograms([MKFS[kind][0], ...(ALSO_NEEDS[kind] ?? [])]);
  if (missing) throw new UnsupportedFs(missing);
  const dir = await fsp.mkdtemp(path.join(parent, `csi-lab-${kind}-`));
  const image = path.join(dir, "fs.img");
  const mountPoint = path.join(dir, "mnt");
  live.add(dir);
  const cleanup = async () => {
    await unmountUnder(mountPoint);
    detachLoopsUnder(mountPoint);
    await run("umount", ["-l", mountPoint]).catch(() => undefined);
    await fsp.rm(dir, { recursive: true, force: true });
    live.delete(dir);
  };
  try {
    // Searchable by all: tests write into volumes as an unprivileged user, as pods do.
    await fsp.chmod(dir, 0o755);
    await fsp.mkdir(mountPoint);
    await fsp.writeFile(image, "");
    await fsp.truncate(image, sizeBytes);
    const [mkfs, args] = MKFS[kind];
    await run(mkfs, [...args, image]);
    const options = ["loop", ...(kind.endsWith("prjquota") ? ["prjquota"] : [])];
    try {
      await run("mount", ["-o", options.join(","), image, mountPoint]);
    } catch {
      // The kernel says why in its log ("quota support not available in this kernel").
      const why = (await run("dmesg", []).catch(() => "")).trim().split("\n").pop()?.replace(/^\[[^\]]*\]\s*/, "");
      throw new UnsupportedFs(`this kernel cannot mount ${kind}${why ? ` (kernel: ${why})` : ""}`);
    }
    if (kind === "xfs-prjquota" && !(await run("findmnt", ["-n", "-o", "OPTIONS", mountPoint])).includes("prjquota")) {
      throw new UnsupportedFs("this kernel mounted XFS without project quotas (built without CONFIG_XFS_QUOTA)");
    }
    if (kind === "btrfs-quota") await run("btrfs", ["quota", "enable", mountPoint]);
    const scratch = path.join(mountPoint, "scratch");
    await fsp.mkdir(scratch, { mode: 0o755 });
    return { kind, mountPoint, scratch, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Loop devices attached to `file`, as losetup(8) sees them. */
export function loopsOf(file: string): string[] {
  return execFileSync("losetup", ["-n", "-O", "NAME", "-j", file], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "");
}

/** In a mocha `before`: make the file system, or skip the suite saying why. */
export async function loopFsOrSkip(ctx: Mocha.Context, kind: LoopFsKind, sizeBytes: number): Promise<LoopFs> {
  try {
    return await makeLoopFs(kind, sizeBytes);
  } catch (err) {
    if (err instanceof UnsupportedFs) {
      console.log(`      (skipped: ${err.message})`);
      ctx.skip();
    }
    throw err;
  }
}

/**
 * In a describe: a driver whose root is on a fresh loop file system of
 * `kind`, made before the suite (which skips if this machine cannot make
 * or mount it, or lacks one of the programs in `needs`) and removed after.
 * `use` receives both once they exist.
 */
export function driverOnLoopFs(kind: LoopFsKind, sizeBytes: number, use: (fs: LoopFs, d: DriverProcess) => void, needs: string[] = []): void {
  let fs: LoopFs | undefined;
  let d: DriverProcess | undefined;
  before(async function () {
    skipUnlessInstalled(this, ...needs);
    fs = await loopFsOrSkip(this, kind, sizeBytes);
    d = await startDriver({ dir: fs.scratch });
    use(fs, d);
  });
  after(async () => {
    await destroyDriver(d);
    await fs?.cleanup();
  });
}
