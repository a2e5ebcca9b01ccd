/**
 * Copies to and from a share, through views that cannot be redirected.
 *
 * cp works on paths, and a share's tree is not the driver's alone: other
 * nodes and the share's own server may swap any directory on it for a
 * symlink at any moment — between the driver's check and cp's open, or in
 * the middle of the copy. A link to "/etc" in place of the snapshots
 * directory would copy the node's files into a restored volume; one to
 * "/var/lib" in place of the share's tmp would have the copy written
 * there. So cp is never given a path on the share. The share agent walks
 * to the directory one component at a time with O_NOFOLLOW (share-agent.ts)
 * and binds the directory it opened — not its path — onto a fresh directory
 * among the driver's views, with nosymfollow, read-only for a source
 * (src/mount/read-only-view.ts). cp reads or writes there: in that very
 * directory, whatever happens to the share's tree meanwhile, and without
 * following any symlink inside it (links are copied as links).
 *
 * A symlink on the way when the agent walks is refused, ELOOP, which
 * volumeDirError answers FAILED_PRECONDITION; a swap after the walk
 * changes nothing the copy sees. The directory not there is answered as
 * the caller says (`gone`), never NOT_FOUND: to CreateVolume and
 * CreateSnapshot that says their source does not exist, while a copy only
 * starts once a record or marker says it does. The mount is made by the
 * agent, within its deadline, as every file operation on a share is; the
 * driver detaches the view when the copy ends (MNT_DETACH never waits on a
 * server), and the start-up sweep takes down any a crash left.
 */
import { withView } from "../../mount/read-only-view";
import type { ShareEnd } from "../../storage/copy-content";
import { shareErrno, type ShareIo } from "./share-io";
import { describeShare, volumeDirError } from "./share-mounts";
import type { ShareLocation } from "./volume-id";

export interface ShareViewOptions {
  /** Where views are mounted: the snapshot store's (SnapshotStore.viewsDir), under the driver's root. */
  viewsDir: string;
  /** A view to copy into (the share's tmp); otherwise read-only. */
  writable?: boolean;
  /** The directory, for the error when it cannot be reached (a symlink on the way: FAILED_PRECONDITION). */
  what: string;
  /** What to answer when it is not there (ENOENT): removed by something other than the driver. */
  gone: () => Error;
}

/** Run `fn` with directory `sub` (relative) below the share whose root is at `root`, reached through a view. */
export function withShareView<T>(
  io: ShareIo,
  share: ShareLocation,
  root: string,
  sub: string,
  opts: ShareViewOptions,
  fn: (view: string) => Promise<T>,
): Promise<T> {
  const mount = (at: string) =>
    io.run("view", { root, sub, at, writable: opts.writable === true }, describeShare(share)).catch((err: unknown) => {
      throw shareErrno(err) === "ENOENT" ? opts.gone() : volumeDirError(err, opts.what);
    });
  return withView(opts.viewsDir, mount, fn, { detach: true });
}

/** A copy's end on `share`, for copyContent: a view, never stat()ed by the driver, whose tools stop when the share stops answering. */
export function shareEnd(io: ShareIo, share: ShareLocation): ShareEnd {
  return { share: describeShare(share), stallMs: io.timeoutMs, stuck: io.stuck };
}
