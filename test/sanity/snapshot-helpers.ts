/**
 * Helpers for the snapshot, restore and clone tests: make volumes with
 * content, take snapshots, and describe a directory tree so two trees can
 * be compared entry by entry (type, mode, owner, times, link targets,
 * bytes).
 */
import { createHash } from "node:crypto";
import { promises as fsp, type Stats } from "node:fs";
import * as path from "node:path";
import type { CreateVolumeRequest } from "../../src/gen/csi";
import { mountCapability, uniqueName, type DriverProcess } from "./harness";

export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;

export async function createVolume(d: DriverProcess, extra: Partial<CreateVolumeRequest> = {}): Promise<string> {
  const res = await d.client.controller.createVolume({ name: uniqueName("vol"), volumeCapabilities: [mountCapability()], ...extra });
  return res.volume!.volumeId!;
}

/** The directory holding a volume's content (the tests write it directly, as a pod would through its mount). */
export function volumeDir(d: DriverProcess, volumeId: string): string {
  return path.join(d.root, "data", volumeId);
}

export function snapshotDir(d: DriverProcess, snapshotId: string): string {
  return path.join(d.root, "snapshots", "data", snapshotId);
}

export async function createSnapshot(d: DriverProcess, sourceVolumeId: string, name = uniqueName("snap")): Promise<string> {
  const res = await d.client.controller.createSnapshot({ name, sourceVolumeId });
  return res.snapshot!.snapshotId!;
}

/** A volume holding a few files, and the snapshot of it. */
export async function volumeWithSnapshot(d: DriverProcess): Promise<{ volumeId: string; snapshotId: string }> {
  const volumeId = await createVolume(d);
  await fsp.writeFile(path.join(volumeDir(d, volumeId), "hello.txt"), "hello from the source volume\n");
  return { volumeId, snapshotId: await createSnapshot(d, volumeId) };
}

export interface Entry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  /** Symlink target, or SHA-256 of a file's bytes. */
  content?: string;
  ino: number;
}

function typeOf(st: Stats): string {
  if (st.isSymbolicLink()) return "symlink";
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  if (st.isFIFO()) return "fifo";
  return "other";
}

/** Every entry under `root` (root itself as "."), by relative path, never following a symlink. */
export async function describeTree(root: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const visit = async (rel: string): Promise<void> => {
    const abs = path.join(root, rel);
    const st = await fsp.lstat(abs);
    const entry: Entry = { type: typeOf(st), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtimeMs: Math.floor(st.mtimeMs), ino: st.ino };
    if (st.isSymbolicLink()) entry.content = await fsp.readlink(abs);
    if (st.isFile()) entry.content = createHash("sha256").update(await fsp.readFile(abs)).digest("hex");
    out.set(rel, entry);
    if (st.isDirectory()) for (const name of (await fsp.readdir(abs)).sort()) await visit(path.join(rel, name));
  };
  await visit(".");
  return out;
}

/** The same entries minus inode numbers (which differ between copies by nature). */
export function withoutInodes(tree: Map<string, Entry>): Record<string, Omit<Entry, "ino">> {
  return Object.fromEntries([...tree].map(([k, { ino: _ino, ...rest }]) => [k, rest]));
}

/** Poll until `check` is true (for catching a copy in flight); gives up after `ms`. */
export async function waitFor(check: () => Promise<boolean>, ms = 10_000, every = 2): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, every));
  }
  return false;
}
