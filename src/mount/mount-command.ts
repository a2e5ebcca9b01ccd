/**
 * mount(8), run as a child process with a deadline.
 *
 * Bind mounts of the node's own directories are made with the mount(2)
 * system call (syscalls.ts). A shared volume is different: mounting an NFS
 * export needs mount(8)'s helper, mount.nfs, which talks to the server
 * (portmapper, protocol negotiation, Kerberos…), and any mount whose
 * source lies on a share — even a bind — makes the kernel look the path
 * up on that share. If the server is gone, that lookup can wait for ever,
 * and a thread that waits for ever inside a system call cannot be
 * interrupted. So every mount that touches a share runs in a child process
 * of its own: the driver waits for it at most `timeoutMs`, then kills its
 * whole process group and answers UNAVAILABLE. A child stuck in the kernel
 * dies when the kernel lets go; the driver has moved on long before.
 *
 * But not forgotten: mount.nfs asleep on a server that stopped answering
 * may sleep for as long as the server is away, and a CSI sidecar retries
 * with backoff for ever — each retry would start one more. So a mount on a
 * share is remembered there when it outlives its kill, like a copy's tool
 * or a share agent (storage/stuck-tools.ts): until it exits, mounts of
 * that share answer UNAVAILABLE at once and start nothing.
 *
 * The program is /bin/mount unless --mount-program names another (tests
 * substitute a script that hangs, or that records its command line).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { failedPrecondition, unavailable, type CsiError } from "../csi/errors";
import type { StuckTools } from "../storage/stuck-tools";
import { report } from "./observer";

export interface MountCommandConfig {
  /** mount(8), or a stand-in. */
  program: string;
  timeoutMs: number;
}

export const DEFAULT_MOUNT_PROGRAM = "mount";

/** The arguments of `mount -t nfs`: options as given (StorageClass mountOptions, plus ro). */
export function nfsMountArgs(source: string, target: string, options: readonly string[]): string[] {
  return ["-t", "nfs", ...(options.length > 0 ? ["-o", options.join(",")] : []), source, target];
}

/** The arguments of a bind mount, then of the remount that applies per-mount flags. */
export function bindArgs(source: string, target: string): string[] {
  return ["--bind", source, target];
}
export function remountBindArgs(target: string, words: readonly string[]): string[] {
  return ["-o", ["remount", "bind", ...words].join(","), target];
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  timedOut: boolean;
}

/**
 * Run `program args` in a new process group; kill the group at the
 * deadline, then tell `killed` (which finds what of it did not die).
 * Resolves with how it ended (never rejects for a failed exit).
 */
export function runBounded(program: string, args: readonly string[], timeoutMs: number, killed?: (leader: ChildProcess) => void): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ["ignore", "ignore", "pipe"], detached: true });
    let stderr = "";
    let timedOut = false;
    let settled = false;
    const finish = (r: Omit<CommandResult, "stderr" | "timedOut">) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, stderr: stderr.trim(), timedOut });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
      killed?.(child);
      // Do not wait for the exit: a child stuck in the kernel may take
      // as long as the kernel does to die.
      finish({ code: null, signal: "SIGKILL" });
    }, timeoutMs);
    child.stderr!.on("data", (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString();
    });
    child.on("error", (err) => {
      stderr += err.message;
      finish({ code: 127, signal: null });
    });
    child.on("close", (code, signal) => finish({ code, signal }));
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** The share a mount touches ("NFS export srv:/x", as messages name it) and where a mount stuck there is remembered. */
export interface MountOnShare {
  share: string;
  stuck: StuckTools;
}

/**
 * Run mount(8) with `args`; CsiError when it fails or runs out of time.
 * `what` names the mount for messages ("NFS export srv:/x at /staging").
 * A mount `on` a share is not started while one stopped there is still
 * stuck in the kernel (UNAVAILABLE at once), and one stopped at its
 * deadline that did not die is remembered there until it exits.
 */
export async function runMount(cfg: MountCommandConfig, args: readonly string[], what: string, on?: MountOnShare): Promise<void> {
  on?.stuck.check(on.share);
  const started = process.hrtime.bigint();
  const killed = on && ((leader: ChildProcess) => on.stuck.addGroup([on.share], leader, (pid, command) => (pid === leader.pid ? "mount" : command)));
  const r = await runBounded(cfg.program, args, cfg.timeoutMs, killed);
  report("mount", started, r.code === 0);
  if (r.code === 0) return;
  throw mountError(r, what, cfg.timeoutMs);
}

/** What a failed mount means for the CO. */
export function mountError(r: CommandResult, what: string, timeoutMs: number): CsiError {
  if (r.timedOut) {
    return unavailable(`mounting ${what} did not finish within ${timeoutMs / 1000} s and was stopped; the server or share may be unreachable`);
  }
  const text = r.stderr.split("\n").slice(0, 3).join("; ") || `exit ${r.code ?? r.signal}`;
  // An export, or a volume's directory on it, that the server does not have is a place missing, as a local share's
  // is: not NOT_FOUND, which would tell CreateVolume's CO that its content source does not exist.
  if (/No such file or directory|does not exist|access denied|not exported|Permission denied|Operation not permitted|bad option|wrong fs type|unknown filesystem/i.test(text)) {
    return failedPrecondition(`mounting ${what} failed: ${text}`);
  }
  return unavailable(`mounting ${what} failed: ${text}`);
}
