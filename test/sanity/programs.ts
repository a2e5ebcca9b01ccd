/**
 * Test helper: the programs a test needs, and a skip saying what to
 * install when one is missing.
 *
 * A stock Debian has e2fsprogs but not xfsprogs or btrfs-progs. A test
 * that needs mkfs.xfs (to make a root of that kind, or because the driver
 * will run it) skips on such a machine with one line naming the package,
 * instead of failing with `spawn mkfs.xfs ENOENT`. `.ci/run` installs
 * them all, so CI runs every test.
 *
 * "Installed" means what a spawn would find: an executable file in a
 * directory of this process's PATH. The drivers the tests start inherit
 * that PATH, so the driver finds exactly what the test found.
 */
import { accessSync, constants as fsc, mkdtempSync, readdirSync, statSync, symlinkSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { TOOL_PACKAGE } from "../../src/mount/filesystem";

/** The Debian package each program comes in: the driver's own programs, and those only tests run. */
const PACKAGE: Record<string, string> = {
  ...TOOL_PACKAGE,
  xfs_quota: "xfsprogs",
  xfs_repair: "xfsprogs",
  "mkfs.btrfs": "btrfs-progs",
  btrfs: "btrfs-progs",
  ip: "iproute2",
  nsenter: "util-linux",
};

/** What the driver runs for an image volume's file system (src/mount/filesystem.ts). */
export const IMAGE_FS_PROGRAMS: Record<string, string[]> = {
  ext4: ["mkfs.ext4", "debugfs", "resize2fs", "e2fsck"],
  xfs: ["mkfs.xfs"],
};

function searchPath(): string[] {
  return (process.env.PATH ?? "").split(":").filter((d) => d !== "");
}

export function isInstalled(program: string): boolean {
  return searchPath().some((dir) => {
    const file = path.join(dir, program);
    try {
      accessSync(file, fsc.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

/**
 * Why these programs cannot be run here, in one line — e.g. "mkfs.xfs is
 * not installed: apt-get install xfsprogs" — or undefined if they all can.
 */
export function missingPrograms(programs: readonly string[]): string | undefined {
  const missing = [...new Set(programs)].filter((p) => !isInstalled(p));
  if (missing.length === 0) return undefined;
  const packages = [...new Set(missing.map((p) => PACKAGE[p] ?? p))];
  const names = missing.length === 1 ? missing[0] : `${missing.slice(0, -1).join(", ")} and ${missing[missing.length - 1]}`;
  return `${names} ${missing.length === 1 ? "is" : "are"} not installed: apt-get install ${packages.join(" ")}`;
}

/** In a mocha test or hook: skip, saying what to install, unless every program is installed. */
export function skipUnlessInstalled(ctx: Mocha.Context, ...programs: string[]): void {
  const why = missingPrograms(programs);
  if (why === undefined) return;
  console.log(`      (skipped: ${why})`);
  ctx.skip();
}

/**
 * A PATH under which `hidden` are not installed: a fresh directory of
 * links to every other program on this PATH — as if their packages had
 * never been installed, for a driver started with it.
 */
export function pathWithout(hidden: readonly string[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-path-"));
  const linked = new Set(hidden);
  for (const d of searchPath()) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const name of names) {
      if (linked.has(name)) continue;
      linked.add(name); // the first on PATH wins, as for a spawn
      symlinkSync(path.join(d, name), path.join(dir, name));
    }
  }
  return dir;
}
