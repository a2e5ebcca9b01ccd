/**
 * Bind mounts as the node service uses them.
 *
 * NodeStageVolume binds the volume's directory at the staging path (one per
 * node); NodePublishVolume binds the staging path at each pod's target path
 * and applies per-pod flags such as read-only. Unpublish and unstage undo
 * that and remove the directory the driver created, as the spec asks.
 *
 * Safety: staging and target paths are reached through MountPlace (never by
 * a path string that a swapped-in symlink could redirect), and unmounting
 * never follows a symlink either.
 */
import { failedPrecondition } from "../csi/errors";
import type { MountEntry } from "./mountinfo";
import { MS } from "./options";
import { bindMount, remountBind, unmount, unmountIfMounted } from "./syscalls";

/**
 * A place to mount, reached without following symlinks (src/node/node-path.ts):
 * `mountOn` is the directory or file itself, opened O_PATH|O_NOFOLLOW, for the
 * mount call; `at` reaches the same place through its open parent directory,
 * and so sees the mount once it is made (for the remount and any unmount).
 */
export interface MountPlace {
  /** As mountinfo spells it: for messages, and for tools that take a mount point. */
  readonly path: string;
  readonly mountOn: string;
  readonly at: string;
}

/** A path the driver itself owns (under its root): the plain path serves for every step. */
export function ownPlace(p: string): MountPlace {
  return { path: p, mountOn: p, at: p };
}

/** Bind `source` at `target`, then apply `bits` (MS_RDONLY, MS_NOEXEC, …) if any. */
export function bindWithFlags(source: string, target: MountPlace, bits: number): void {
  bindMount(source, target.mountOn);
  if (bits !== 0) {
    try {
      remountBind(target.at, bits);
    } catch (err) {
      unmount(target.at, { detach: true }); // never leave a half-configured (e.g. writable) mount
      throw err;
    }
  }
}

/**
 * The flags of a copier's view (read-only-view.ts): no symlink is ever
 * followed in it, nosuid and nodev; read-only unless it is written into.
 * Here, not there, so that the share agent can mount one without loading
 * the mount table's code.
 */
export function viewFlags(writable: boolean): number {
  return MS.NOSYMFOLLOW | MS.NOSUID | MS.NODEV | (writable ? 0 : MS.RDONLY);
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

/** Whether the mount entry is read-only at the per-mount level. */
export function isReadOnly(entry: MountEntry): boolean {
  return entry.options.includes("ro");
}

export function readOnlyBits(readonly: boolean, flagBits: number): number {
  return (readonly ? MS.RDONLY : 0) | flagBits;
}
