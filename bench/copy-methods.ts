/**
 * Which snapshot format? Four candidates, measured on the same data set.
 *
 * A hostPath snapshot has to copy a directory tree faithfully (modes,
 * owners, timestamps, symlinks as symlinks, hard links) and restore it the
 * same way. The candidates:
 *
 *   cp-reflink   GNU `cp -a --reflink=auto`: a tree of reflinked files where
 *                the file system can share extents (FICLONE on xfs/btrfs),
 *                a plain copy elsewhere
 *   cp-plain     GNU `cp -a --reflink=never`: the plain recursive copy
 *   tar          an archive: `tar -c` to snapshot, `tar -x` to restore
 *   node-fs-cp   Node's own walker, fs.cp with COPYFILE_FICLONE (in-process;
 *                it keeps neither owners nor hard links, so it is a lower
 *                bound for what a faithful in-process walker would cost)
 *
 * Every step ends with `sync -f`, so a time includes getting the bytes to
 * disk — a snapshot is not taken until it would survive a power cut.
 *
 * Times are the median of --repeat runs (space does not vary between runs).
 *
 *   node dist/bench/copy-methods.js --dir /mnt/xfs/work [--repeat 3] [--files 10000] [--bytes 1073741824]
 */
import { spawnSync } from "node:child_process";
import { constants, promises as fsp } from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { duBytes, fillDataset, FILES, fsType, fsUsedBytes, gib, mib, TOTAL_BYTES } from "./dataset";

interface Method {
  name: string;
  snapshot(src: string, snap: string): Promise<void>;
  restore(snap: string, dst: string): Promise<void>;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
}

const cpTree = (reflink: string) => async (from: string, to: string) => run("cp", ["-a", `--reflink=${reflink}`, "-T", from, to]);

const METHODS: Method[] = [
  { name: "cp-reflink", snapshot: cpTree("auto"), restore: cpTree("auto") },
  { name: "cp-plain", snapshot: cpTree("never"), restore: cpTree("never") },
  {
    name: "tar",
    snapshot: async (src, snap) => run("tar", ["--xattrs", "--numeric-owner", "-C", src, "-cf", snap, "."]),
    restore: async (snap, dst) => {
      await fsp.mkdir(dst);
      run("tar", ["--xattrs", "--numeric-owner", "--same-owner", "-p", "-C", dst, "-xf", snap]);
    },
  },
  {
    name: "node-fs-cp",
    snapshot: (src, snap) => fsp.cp(src, snap, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true, mode: constants.COPYFILE_FICLONE }),
    restore: (snap, dst) => fsp.cp(snap, dst, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true, mode: constants.COPYFILE_FICLONE }),
  },
];

interface Measured {
  seconds: number;
  bytes: number;
}

/** The run with the median time, and the median space. */
function median(xs: Measured[]): Measured {
  const mid = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  return { seconds: mid(xs.map((x) => x.seconds)), bytes: mid(xs.map((x) => x.bytes)) };
}

async function timed(dir: string, step: () => Promise<void>): Promise<Measured> {
  const before = await fsUsedBytes(dir);
  const t0 = process.hrtime.bigint();
  await step();
  spawnSync("sync", ["-f", dir]);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, bytes: (await fsUsedBytes(dir)) - before };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      files: { type: "string", default: String(FILES) },
      bytes: { type: "string", default: String(TOTAL_BYTES) },
      only: { type: "string" },
      repeat: { type: "string", default: "3" },
    },
  });
  if (!values.dir) throw new Error("--dir DIR is required (a scratch directory on the file system to measure)");
  const work = path.resolve(values.dir);
  const files = Number(values.files);
  const fileBytes = Math.floor(Number(values.bytes) / files);
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(work, { recursive: true });
  const src = path.join(work, "volume");
  await fsp.mkdir(src);
  await fillDataset(src, files, fileBytes);
  spawnSync("sync", ["-f", work]);
  const fs = fsType(work);
  console.log(`# ${fs}: ${files} files, ${gib(duBytes(src))} GiB in the volume`);
  console.log("| fs | method | snapshot s | snapshot space MiB | restore s | restore space MiB |");
  console.log("|---|---|---:|---:|---:|---:|");
  for (const m of METHODS.filter((x) => !values.only || values.only.split(",").includes(x.name))) {
    const snaps: Measured[] = [];
    const restores: Measured[] = [];
    for (let i = 0; i < Number(values.repeat); i++) {
      const snap = path.join(work, `snap-${m.name}`);
      const dst = path.join(work, `restored-${m.name}`);
      snaps.push(await timed(work, () => m.snapshot(src, snap)));
      restores.push(await timed(work, () => m.restore(snap, dst)));
      // The restored tree must equal the source.
      run("diff", ["-r", "--no-dereference", src, dst]);
      await fsp.rm(snap, { recursive: true, force: true });
      await fsp.rm(dst, { recursive: true, force: true });
    }
    const [s, r] = [median(snaps), median(restores)];
    console.log(`| ${fs} | ${m.name} | ${s.seconds.toFixed(2)} | ${mib(s.bytes)} | ${r.seconds.toFixed(2)} | ${mib(r.bytes)} |`);
  }
  await fsp.rm(work, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
