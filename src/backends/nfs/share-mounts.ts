/**
 * Reaching a share from the controller.
 *
 * A local share (no server) is a path already mounted on this machine: the
 * controller works in it directly. A remote export is mounted by the
 * controller into a working directory under its root,
 * <root>/.shares/<key>.<n>, for as long as some call needs it — mount(8)
 * with a deadline (mount-command.ts) — and unmounted when the last of them
 * is done. Calls that overlap share one mount. Unmounting detaches
 * (MNT_DETACH): it never waits on the server, and the kernel lets go of
 * the export once nothing uses it. Working directories left by a crash are
 * detached and removed at start-up.
 *
 * A share on which a copy's tool, a share agent or the export's mount was
 * killed and is still stuck in the kernel (storage/stuck-tools.ts) is not
 * entered at all: calls on it answer UNAVAILABLE at once, starting nothing
 * that would get stuck beside it. What the failed copy left in the share's
 * tmp is removed once the tool has exited, after the call answered (tidy).
 */
import { createHash, randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { CsiError, failedPrecondition } from "../../csi/errors";
import { systemPathProblem } from "../../csi/system-paths";
import { nfsMountArgs, runMount, type MountCommandConfig } from "../../mount/mount-command";
import { readMountInfo } from "../../mount/mountinfo";
import { unmountIfMounted } from "../../mount/syscalls";
import type { ShareIo } from "./share-io";
import { shareErrno } from "./share-io";
import { nfsSource, type ShareLocation } from "./volume-id";

interface WorkMount {
  users: number;
  dir: string;
  ready: Promise<void>;
}

export function describeShare(s: ShareLocation): string {
  return s.server ? `NFS export ${nfsSource(s.server, s.share)}` : `share ${s.share}`;
}

export class ShareMounts {
  private readonly mounts = new Map<string, WorkMount>();
  /** Clean-ups waiting for a share's stuck tools to exit, by describeShare(). */
  private readonly tidying = new Map<string, Promise<void>>();

  constructor(
    private readonly workDir: string,
    private readonly mountCmd: MountCommandConfig,
    private readonly io: ShareIo,
  ) {}

  /** Detach and remove working mounts a crash left behind. */
  static async sweep(workDir: string): Promise<void> {
    await fsp.mkdir(workDir, { recursive: true, mode: 0o700 });
    const left = readMountInfo().filter((m) => path.dirname(m.mountPoint) === workDir);
    for (const m of left.reverse()) await unmountIfMounted(m.mountPoint, { detach: true }).catch(() => false);
    for (const e of await fsp.readdir(workDir)) await fsp.rmdir(path.join(workDir, e)).catch(() => undefined);
  }

  /**
   * Run `fn` with the share's root reachable at a local path. The root is
   * checked first (a bounded probe): missing → FAILED_PRECONDITION, not
   * answering → UNAVAILABLE; and before that, a tool still stuck on the
   * share → UNAVAILABLE at once. A clean-up the share owes (tidy) is waited
   * for: it runs within deadlines.
   */
  async with<T>(share: ShareLocation, fn: (root: string) => Promise<T>): Promise<T> {
    this.checkNotStuck(share);
    await this.tidying.get(describeShare(share));
    return this.enter(share, fn);
  }

  /** UNAVAILABLE at once while a tool killed on the share is still stuck in the kernel (storage/stuck-tools.ts). */
  checkNotStuck(share: ShareLocation): void {
    this.io.stuck.check(describeShare(share));
  }

  /**
   * Remove what a failed call left on the share: `clean`, given the share's
   * root, now — unless a tool of a copy is still stuck on the share. Then
   * the removal would wait on the same share (its rm asleep beside the tool,
   * and the call's answer delayed by a whole share timeout), so it runs
   * after the answer, once the tool has exited. Meanwhile what is left stays
   * where a retry finds it (named for its volume or snapshot in the share's
   * tmp): the next try of that name removes it first, in this driver or one
   * restarted after a kill -9. Errors are ignored either way, for the same
   * reason. True when it was removed at once.
   */
  async tidy(share: ShareLocation, root: string, clean: (root: string) => Promise<unknown>): Promise<boolean> {
    const what = describeShare(share);
    if (!this.io.stuck.holds(what)) return clean(root).then(() => true, () => false);
    const before = this.tidying.get(what);
    const later = (async () => {
      await before;
      await this.io.stuck.gone(what);
      await this.enter(share, clean).catch(() => undefined);
    })();
    this.tidying.set(what, later);
    void later.then(() => this.tidying.get(what) === later && this.tidying.delete(what));
    return false;
  }

  private async enter<T>(share: ShareLocation, fn: (root: string) => Promise<T>): Promise<T> {
    if (!share.server) {
      await this.checkRoot(share, share.share);
      return fn(share.share);
    }
    const key = createHash("sha256").update(`${share.server}\0${share.share}`).digest("hex").slice(0, 16);
    let m = this.mounts.get(key);
    if (!m) {
      const dir = path.join(this.workDir, `${key}.${randomBytes(3).toString("hex")}`);
      const made: WorkMount = { users: 0, dir, ready: this.mount(share, dir) };
      m = made;
      this.mounts.set(key, made);
      made.ready.catch(() => {
        if (this.mounts.get(key) === made) this.mounts.delete(key);
      });
    }
    m.users++;
    try {
      await m.ready;
      await this.checkRoot(share, m.dir);
      return await fn(m.dir);
    } finally {
      if (--m.users === 0 && this.mounts.get(key) === m) {
        this.mounts.delete(key);
        await this.unmount(m.dir);
      }
    }
  }

  private async mount(share: ShareLocation, dir: string): Promise<void> {
    await fsp.mkdir(dir, { mode: 0o700 });
    try {
      const what = describeShare(share);
      await runMount(this.mountCmd, nfsMountArgs(nfsSource(share.server, share.share), dir, []), what, { share: what, stuck: this.io.stuck });
    } catch (err) {
      await this.unmount(dir);
      throw err;
    }
  }

  private async unmount(dir: string): Promise<void> {
    await unmountIfMounted(dir, { detach: true }).catch(() => false);
    await fsp.rmdir(dir).catch(() => undefined);
  }

  private async checkRoot(share: ShareLocation, root: string): Promise<void> {
    let kind: string;
    try {
      ({ kind } = await this.io.run<{ kind: string }>("probe", { path: root }, describeShare(share)));
      if (!share.server) {
        // A local share reached through a symlink must still not be a system directory.
        const real = await this.io.run<string>("realpath", { path: root }, describeShare(share));
        const problem = systemPathProblem(real);
        if (problem) throw failedPrecondition(`${describeShare(share)} leads to ${real}: ${problem}; it cannot be a share`);
      }
    } catch (err) {
      if (err instanceof CsiError) throw err;
      const errno = shareErrno(err);
      if (errno === "ENOENT") throw failedPrecondition(`${describeShare(share)} does not exist on this node; it must be mounted on every node`);
      if (errno === undefined) throw err;
      throw failedPrecondition(`${describeShare(share)} cannot be used: ${errno}`);
    }
    if (kind !== "dir") throw failedPrecondition(`${describeShare(share)} is not a directory`);
  }
}

/**
 * Map an agent errno on a volume's directory to the CSI answer. ENOENT is never NOT_FOUND here: whether the
 * volume or snapshot a call names exists is decided from its record and marker before, so what is missing
 * now is something removed behind the driver (FAILED_PRECONDITION, with the errno's message).
 */
export function volumeDirError(err: unknown, what: string): Error {
  const errno = shareErrno(err);
  if (errno === undefined) return err as Error;
  if (errno === "ENOSPC" || errno === "EDQUOT") return Object.assign(new Error(`${what}: ${errno}`), { code: errno });
  return failedPrecondition(`${what}: ${(err as Error).message}`);
}
