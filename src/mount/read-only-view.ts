/**
 * A read-only view of a live volume that never follows a symlink.
 *
 * Copying a directory while a pod writes it is a race. A copier that walks
 * paths lstat()s "a" (a directory), then opens "a/f"; if the pod replaced
 * "a" with a symlink to "/etc" in between, the open goes through the link
 * and the copy now holds the node's files — readable by whoever restores
 * it. O_NOFOLLOW only guards the last component, so no user-space walker
 * can close this race by checking harder.
 *
 * The kernel can: a mount made with MS_NOSYMFOLLOW (Linux 5.10+) refuses to
 * follow any symlink during path resolution on it (ELOOP), while
 * readlink(2) still reads links, so they are copied as links. The copier
 * reads the volume through such a bind mount: read-only (it can never
 * change the volume), nosuid and nodev, and not recursive (mounts inside
 * the volume are not entered). Views live in one directory of their own,
 * and the start-up sweep unmounts any a crash left behind.
 *
 * A copy *into* a directory that others can change — a share's work area,
 * which other nodes and the share's server may rearrange at any time — is
 * the same race the other way round: cp makes "a", then writes "a/f"; with
 * "a" swapped for a link to "/var/lib" in between, the write lands there.
 * So such a copy writes through a writable view with the same flags. The
 * share agent mounts both kinds for the share's directories, binding each
 * from the directory it opened without following a symlink, never from
 * its path (src/backends/nfs/share-views.ts).
 */
import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { bindWithFlags, ownPlace, unmountAll, viewFlags } from "./bind";
import { readMountInfo } from "./mountinfo";
import { unmount } from "./syscalls";

/** Mount a view of `dir` under `viewsDir`, run `fn` on it, and take the view down again. */
export function withReadOnlyView<T>(dir: string, viewsDir: string, fn: (view: string) => Promise<T>): Promise<T> {
  return withView(viewsDir, (view) => bindWithFlags(dir, ownPlace(view), viewFlags(false)), fn);
}

/**
 * Make a fresh directory under `viewsDir`, have `mount` mount a view there,
 * run `fn` on it, and take the view down again — also when `mount` failed
 * part way (a share agent that missed its deadline may have mounted it).
 * `detach`: unmount with MNT_DETACH, which never waits (a view of a share
 * whose server may be gone).
 */
export async function withView<T>(
  viewsDir: string,
  mount: (view: string) => void | Promise<unknown>,
  fn: (view: string) => Promise<T>,
  opts: { detach?: boolean } = {},
): Promise<T> {
  const view = path.join(viewsDir, randomBytes(8).toString("hex"));
  await fsp.mkdir(view, { mode: 0o700 });
  try {
    try {
      await mount(view);
      return await fn(view);
    } finally {
      await unmountAll(view, opts);
    }
  } finally {
    await fsp.rmdir(view).catch(() => undefined);
  }
}

/** Unmount and remove every view under `viewsDir` (a crash's leftovers). */
export async function sweepViews(viewsDir: string): Promise<void> {
  const prefix = path.resolve(viewsDir) + "/";
  const stale = readMountInfo()
    .filter((m) => m.mountPoint.startsWith(prefix))
    .reverse(); // deepest, most recent first
  for (const m of stale) {
    try {
      unmount(m.mountPoint, { detach: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
    }
  }
  for (const entry of await fsp.readdir(viewsDir)) await fsp.rmdir(path.join(viewsDir, entry)).catch(() => undefined);
}
