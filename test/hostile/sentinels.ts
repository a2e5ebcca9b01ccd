/**
 * Sentinels for the hostile-input suite: things a driver must never touch,
 * placed exactly where hostile requests point, and a fingerprint that shows
 * whether anything about them changed.
 *
 * Outside every directory the driver was given: /sentinel on the throwaway
 * root — a file with data, a directory with entries, an empty directory, a
 * tmpfs mounted by "another program" — and the system's own /proc, /sys,
 * /dev, /etc. Inside the kubelet directory: a tmpfs that is another
 * program's mount, a directory holding data, a file with data, an empty
 * file, and symlinks leading to "/" and to /sentinel. On the allowed share:
 * another tenant's directory with data (never made by the driver), and a
 * symlink to "/".
 *
 * The fingerprint lists every sentinel (kind, mode, size, content hash,
 * link target) and every mount outside the driver's own places; a call
 * passes when the fingerprint after it equals the one before.
 */
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { readMountInfo, type MountEntry } from "../../src/mount/mountinfo";
import { mountFs } from "../../src/mount/syscalls";
import type { DriverProcess } from "../sanity/harness";

export const OUTSIDE = "/sentinel";

export interface Sentinels {
  /** Paths whose state is fingerprinted (trees are walked). */
  watched: string[];
  /** Paths a hostile request may name: the interesting places. */
  places: string[];
  /** Directories the driver may legitimately mount into (its kubelet directory). */
  kubeletDir: string;
}

function mkdirs(p: string): void {
  mkdirSync(p, { recursive: true });
}

export function plantSentinels(d: DriverProcess): Sentinels {
  mkdirs(path.join(OUTSIDE, "dir", "inner"));
  writeFileSync(path.join(OUTSIDE, "file"), "outside data\n");
  writeFileSync(path.join(OUTSIDE, "dir", "inner", "deep"), "deep data\n");
  mkdirs(path.join(OUTSIDE, "empty-dir"));
  mkdirs(path.join(OUTSIDE, "mnt"));
  mountFs("sentinel-tmpfs", path.join(OUTSIDE, "mnt"), "tmpfs", 0, "size=1m");
  writeFileSync(path.join(OUTSIDE, "mnt", "inside"), "in another program's tmpfs\n");

  const k = d.kubeletDir;
  const pods = path.join(k, "pods");
  mkdirs(path.join(pods, "foreign-mnt"));
  mountFs("sentinel-kubelet-tmpfs", path.join(pods, "foreign-mnt"), "tmpfs", 0, "size=1m");
  writeFileSync(path.join(pods, "foreign-mnt", "pod-data"), "another program's mount\n");
  mkdirs(path.join(pods, "full-dir"));
  writeFileSync(path.join(pods, "full-dir", "keep"), "a directory that holds data\n");
  writeFileSync(path.join(pods, "data-file"), "a file with data\n");
  writeFileSync(path.join(pods, "empty-file"), "");
  mkdirs(path.join(pods, "empty-dir"));
  symlinkSync("/", path.join(k, "link-to-root"));
  symlinkSync(OUTSIDE, path.join(k, "link-to-sentinel"));
  symlinkSync(path.join(OUTSIDE, "file"), path.join(pods, "link-to-file"));

  mkdirs(path.join(d.share, "other-tenant", "data"));
  writeFileSync(path.join(d.share, "other-tenant", "data", "records"), "another tenant's data\n");
  symlinkSync("/", path.join(d.share, "link-to-root"));
  symlinkSync(OUTSIDE, path.join(d.share, "link-to-sentinel"));

  const watched = [
    OUTSIDE,
    path.join(pods, "foreign-mnt"),
    path.join(pods, "full-dir"),
    path.join(pods, "data-file"),
    path.join(pods, "empty-file"),
    path.join(pods, "empty-dir"),
    path.join(pods, "link-to-file"),
    path.join(k, "link-to-root"),
    path.join(k, "link-to-sentinel"),
    path.join(d.share, "other-tenant"),
    path.join(d.share, "link-to-root"),
    path.join(d.share, "link-to-sentinel"),
    "/etc/passwd",
    "/etc/hostname",
  ];
  const places = [
    "/",
    "/proc",
    "/proc/self",
    "/sys",
    "/dev",
    "/etc",
    "/etc/passwd",
    "/tmp",
    "/usr",
    OUTSIDE,
    path.join(OUTSIDE, "file"),
    path.join(OUTSIDE, "dir"),
    path.join(OUTSIDE, "empty-dir"),
    path.join(OUTSIDE, "mnt"),
    k,
    `${k}/`,
    `${k}/../..`,
    `${k}/pods/../../..`,
    `${k}//pods`,
    `${k}/./pods`,
    path.join(k, "link-to-root"),
    path.join(k, "link-to-root", "proc"),
    path.join(k, "link-to-root", "etc", "passwd"),
    path.join(k, "link-to-sentinel"),
    path.join(k, "link-to-sentinel", "file"),
    path.join(k, "link-to-sentinel", "mnt"),
    path.join(pods, "foreign-mnt"),
    path.join(pods, "full-dir"),
    path.join(pods, "data-file"),
    path.join(pods, "empty-file"),
    path.join(pods, "empty-dir"),
    path.join(pods, "link-to-file"),
    d.root,
    path.join(d.root, "data"),
    path.join(d.root, "volumes"),
    d.share,
    path.join(d.share, "other-tenant"),
    "relative/path",
    "pods",
    ".",
    "..",
    "../../etc",
    "",
    "/\0/etc",
    "/" + "a/".repeat(2100),
  ];
  return { watched, places, kubeletDir: k };
}

function describeTree(p: string, out: string[]): void {
  let st;
  try {
    st = lstatSync(p);
  } catch (err) {
    out.push(`${p} ${(err as NodeJS.ErrnoException).code}`);
    return;
  }
  const mode = (st.mode & 0o7777).toString(8);
  if (st.isSymbolicLink()) out.push(`${p} link ${readlinkSync(p)}`);
  else if (st.isFile()) out.push(`${p} file ${mode} ${st.uid}:${st.gid} ${createHash("sha256").update(readFileSync(p)).digest("hex").slice(0, 16)}`);
  else if (st.isDirectory()) {
    out.push(`${p} dir ${mode} ${st.uid}:${st.gid}`);
    for (const e of readdirSync(p).sort()) describeTree(path.join(p, e), out);
  } else out.push(`${p} other ${mode}`);
}

/** Mount table entries that are not the driver's to make: everything except new mounts inside the kubelet directory. */
function mountLine(m: MountEntry): string {
  return `${m.mountPoint} ${m.device} ${m.root} ${m.fsType} ${m.source} ${m.options.join(",")}`;
}

export interface Fingerprint {
  tree: string[];
  rootListing: string[];
  mounts: string[];
}

export function fingerprint(s: Sentinels): Fingerprint {
  const tree: string[] = [];
  for (const p of s.watched) describeTree(p, tree);
  // Inside the kubelet directory, new mounts are judged by driverMountProblems, and another
  // program's mount there (a sentinel) is in the tree: unmounted, its files would vanish.
  // Everything else in the table must stay exactly as it was.
  const mounts = readMountInfo()
    .filter((m) => m.mountPoint !== s.kubeletDir && !m.mountPoint.startsWith(s.kubeletDir + "/"))
    .map(mountLine)
    .sort();
  return { tree, rootListing: readdirSync("/").sort(), mounts };
}

export function mountLines(): Set<string> {
  return new Set(readMountInfo().map(mountLine));
}

/**
 * New mounts inside the kubelet directory must be the driver's own mounts
 * of its own volumes (`isOwn` says which are). Returns what is wrong.
 */
export function driverMountProblems(s: Sentinels, baseline: ReadonlySet<string>, isOwn: (m: MountEntry) => boolean): string[] {
  const problems: string[] = [];
  for (const m of readMountInfo()) {
    if (baseline.has(mountLine(m))) continue;
    if (!m.mountPoint.startsWith(s.kubeletDir + "/") || !isOwn(m)) problems.push(`unexpected mount: ${mountLine(m)}`);
  }
  return problems;
}

/** Mounts that are new since `baseline` (deepest first). */
export function newMounts(baseline: ReadonlySet<string>): MountEntry[] {
  return readMountInfo()
    .filter((m) => !baseline.has(mountLine(m)))
    .reverse();
}
