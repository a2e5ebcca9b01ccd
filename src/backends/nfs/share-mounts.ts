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
 * A share on which a copy's tool was killed and is still stuck in the
 * kernel (storage/stuck-tools.ts) is not entered at all: calls on it answer
 * UNAVAILABLE at once, starting nothing that would get stuck beside it.
 */
import { createHash, randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { CsiError, failedPrecondition, notFound } from "../../csi/errors";
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
   * share → UNAVAILABLE at once.
   */
  async with<T>(share: ShareLocation, fn: (root: string) => Promise<T>): Promise<T> {
    this.checkNotStuck(share);
    return this.enter(share, fn);
  }

  /** UNAVAILABLE at once while a tool killed on the share is still stuck in the kernel (storage/stuck-tools.ts). */
  checkNotStuck(share: ShareLocation): void {
    this.io.stuck.check(describeShare(share));
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
      await runMount(this.mountCmd, nfsMountArgs(nfsSource(share.server, share.share), dir, []), describeShare(share));
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

/** Map an agent errno on a volume's directory to the CSI answer. */
export function volumeDirError(err: unknown, what: string): Error {
  const errno = shareErrno(err);
  if (errno === undefined) return err as Error;
  if (errno === "ENOENT") return notFound(`${what} does not exist`);
  if (errno === "ENOSPC" || errno === "EDQUOT") return Object.assign(new Error(`${what}: ${errno}`), { code: errno });
  return failedPrecondition(`${what}: ${(err as Error).message}`);
}
