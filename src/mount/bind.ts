/**
 * Bind mounts as the node service uses them.
 *
 * NodeStageVolume binds the volume's directory at the staging path (one per
 * node); NodePublishVolume binds the staging path at each pod's target path
 * and applies per-pod flags such as read-only. Unpublish and unstage undo
 * that and remove the directory the driver created, as the spec asks.
 *
 * Safety: a target that is a symlink is refused (mount(2) would follow it
 * wherever it points), and unmounting never follows one either.
 */
import { lstatSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { failedPrecondition } from "../csi/errors";
import type { MountEntry } from "./mountinfo";
import { MS } from "./options";
import { bindMount, remountBind, unmount, unmountIfMounted } from "./syscalls";

/** Create `dir` (and parents) if missing; refuse if it is a symlink or not a directory. */
export async function ensureDirectory(dir: string, field: string): Promise<void> {
  // Usually the CO made it already; a cached lstat says so without a trip
  // to the thread pool.
  let st = lstatSync(dir, { throwIfNoEntry: false });
  if (!st) {
    await fsp.mkdir(dir, { recursive: true, mode: 0o750 });
    st = lstatSync(dir);
  }
  if (st.isSymbolicLink()) throw failedPrecondition(`${field} ${dir} is a symbolic link; refusing to mount over it`);
  if (!st.isDirectory()) throw failedPrecondition(`${field} ${dir} exists and is not a directory`);
}

/** Bind `source` at `target`, then apply `bits` (MS_RDONLY, MS_NOEXEC, …) if any. */
export function bindWithFlags(source: string, target: string, bits: number): void {
  bindMount(source, target);
  if (bits !== 0) {
    try {
      remountBind(target, bits);
    } catch (err) {
      unmount(target, { detach: true }); // never leave a half-configured (e.g. writable) mount
      throw err;
    }
  }
}

/** Unmount everything stacked at `target`; true if anything was mounted. */
export async function unmountAll(target: string, opts: { detach?: boolean } = {}): Promise<boolean> {
  let any = false;
  for (let i = 0; i < 64; i++) {
    try {
      if (!(await unmountIfMounted(target, opts))) return any;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EBUSY") throw err;
      // Still in use by some process: detach it from the tree now; the
      // kernel frees it when the last user lets go.
      await unmountIfMounted(target, { detach: true });
    }
    any = true;
  }
  throw failedPrecondition(`${target} still has mounts after 64 unmounts`);
}

/** Remove the (now empty) directory at `target` if it exists. */
export async function removeMountPoint(target: string): Promise<void> {
  try {
    await fsp.rmdir(target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    if (code === "ENOTDIR") {
      await fsp.unlink(target);
      return;
    }
    throw err;
  }
}

/** Whether the mount entry is read-only at the per-mount level. */
export function isReadOnly(entry: MountEntry): boolean {
  return entry.options.includes("ro");
}

export function readOnlyBits(readonly: boolean, flagBits: number): number {
  return (readonly ? MS.RDONLY : 0) | flagBits;
}

/** Resolve a path's parent symlinks but not the last component. */
export async function realParent(p: string): Promise<string> {
  const parent = await fsp.realpath(path.dirname(p));
  return path.join(parent, path.basename(p));
}
