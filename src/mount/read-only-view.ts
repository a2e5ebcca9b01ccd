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
 */
import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { bindWithFlags, ownPlace, unmountAll } from "./bind";
import { readMountInfo } from "./mountinfo";
import { MS } from "./options";
import { unmount } from "./syscalls";

const VIEW_FLAGS = MS.RDONLY | MS.NOSYMFOLLOW | MS.NOSUID | MS.NODEV;

/** Mount a view of `dir` under `viewsDir`, run `fn` on it, and take the view down again. */
export async function withReadOnlyView<T>(dir: string, viewsDir: string, fn: (view: string) => Promise<T>): Promise<T> {
  const view = path.join(viewsDir, randomBytes(8).toString("hex"));
  await fsp.mkdir(view, { mode: 0o700 });
  try {
    bindWithFlags(dir, ownPlace(view), VIEW_FLAGS);
    try {
      return await fn(view);
    } finally {
      await unmountAll(view);
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
