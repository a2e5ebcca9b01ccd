/**
 * strace, for the crash explorer: which calls that change the disk or the
 * mount table a thread of the driver makes, and a kill -9 at exactly one of
 * them.
 *
 * strace's fault injection (`-e inject=CALL:signal=SIG:when=K`, man strace)
 * hands a thread a signal as it enters its K-th call of CALL. The kernel
 * looks for a fatal signal right after that stop, and skips the call if it
 * finds one: SIGKILL there kills the driver just *before* the call, which
 * changes nothing. SIGSTOP is not fatal: the call runs, and the process
 * stops as it returns, to be killed just *after* the call.
 *
 * strace counts calls per system call and per thread (per "tracee"), so a
 * K from one run means the same call in the next only on one thread whose
 * calls come in one order. The explorer therefore attaches to one thread
 * at a time, and runs the driver with one libuv pool thread
 * (UV_THREADPOOL_SIZE=1): a driver's work is on its main thread
 * (synchronous calls, koffi's synchronous calls, spawning) or on that pool
 * thread (fs.promises, koffi's asynchronous calls).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/**
 * The calls that change the disk or the mount table (and a few that only
 * may: a write counts when its descriptor is a file or device, an open when
 * it creates or truncates, an ioctl when it is one of those in CHANGING_IOCTL,
 * a quotactl when it sets a limit or turns quotas on or off).
 * Which of them the driver really makes, each cycle's reference run
 * records (crash-explorer.ts); the others are here so that a new one in
 * the driver is seen.
 */
export const CHANGING_CALLS = [
  "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
  "mknod", "mknodat", "open", "openat", "creat", "write", "pwrite64", "writev", "pwritev", "pwritev2", "fsync", "fdatasync",
  "sync_file_range", "truncate", "ftruncate", "fallocate", "copy_file_range", "chmod", "fchmod", "fchmodat", "chown", "fchown",
  "fchownat", "lchown", "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "utimensat",
  "mount", "umount2", "move_mount", "fsmount", "fsconfig", "mount_setattr", "ioctl", "quotactl", "quotactl_fd",
] as const;

const DATA_CALLS = new Set(["write", "pwrite64", "writev", "pwritev", "pwritev2", "fsync", "fdatasync", "sync_file_range"]);
const OPEN_CALLS = new Set(["open", "openat", "creat"]);
/**
 * ioctls that change a device, a file system or a file (strace's names for them, and the raw numbers of those it
 * has no name for: XFS_IOC_FSGROWFSDATA, …LOG and …RT, _IOW('X', 110…112), which xfs_growfs makes).
 */
const CHANGING_IOCTL = /_IOC\(_IOC_WRITE, 0x58, 0x(6e|6f|70),|\b(LOOP_(CONFIGURE|SET_FD|SET_STATUS|CLR_FD|CHANGE_FD|SET_CAPACITY|SET_DIRECT_IO|SET_BLOCK_SIZE|CTL_ADD|CTL_REMOVE)|FICLONE|FIDEDUPERANGE|FIFREEZE|FITHAW|FITRIM|FS_IOC_(FSSETXATTR|SETFLAGS|RESIZE)|EXT4_IOC_|XFS_IOC_FSGROWFS|BLKDISCARD\b|BLKZEROOUT|BTRFS_IOC_(QGROUP|QUOTA|SUBVOL|SNAP))/;

/** One call of CHANGING_CALLS a thread made, as strace printed it. */
export interface TracedCall {
  syscall: string;
  /** Which call of `syscall` on its thread this was, from 1, counting every one (what strace's `when=` counts). */
  nth: number;
  /** Does it change the disk or the mount table? */
  changing: boolean;
  /** The call and the paths it names (strace -y), for a person and to recognise the same call in another run. */
  text: string;
  /** Its result as strace printed it ("0", "-1 ENOENT (…)"), or "" or "?" if the thread died in it. */
  result: string;
}

/** Parse what strace wrote for one thread (-y, one thread per file). */
export function parseTrace(text: string): TracedCall[] {
  const counts = new Map<string, number>();
  const calls: TracedCall[] = [];
  for (const line of text.split("\n")) {
    const m = /^([a-z_0-9]+)\((.*)$/.exec(line);
    if (!m || m[1]!.startsWith("syscall_")) continue; // signals, exits, resumptions, calls strace has no name for
    const syscall = m[1]!;
    const nth = (counts.get(syscall) ?? 0) + 1;
    counts.set(syscall, nth);
    const eq = /\) += (.*)$/.exec(m[2]!);
    const args = (eq ? m[2]!.slice(0, eq.index) : m[2]!).replace(/\s*<unfinished \.\.\.>\)?$/, "");
    calls.push({ syscall, nth, changing: isChanging(syscall, args, eq?.[1] ?? ""), text: `${syscall}(${args})`, result: eq?.[1] ?? "" });
  }
  return calls;
}

/** Did the thread die in this call (strace printed it as it entered, without what the kernel fills in on the way out)? */
export function diedIn(call: TracedCall): boolean {
  return call.result === "" || call.result === "?";
}

function isChanging(syscall: string, args: string, result: string): boolean {
  if (result.startsWith("-1 ")) return false; // it failed, and changed nothing (a mkdir -p's EEXIST, an unmount's EINVAL)
  if (OPEN_CALLS.has(syscall)) return syscall === "creat" || /O_CREAT|O_TRUNC/.test(args);
  if (syscall === "ioctl") return CHANGING_IOCTL.test(args);
  if (syscall.startsWith("quotactl")) return /Q_(SETQUOTA|SETINFO|QUOTAON|QUOTAOFF|XSETQLIM|XQUOTAON|XQUOTAOFF|XQUOTARM)\b/.test(args);
  if (DATA_CALLS.has(syscall)) {
    // The first argument is the descriptor, with its path: a file or a device, not a socket, pipe, eventfd or terminal.
    const fd = /^\d+<([^>]*)>/.exec(args)?.[1] ?? "";
    return fd.startsWith("/") && !/^\/(dev\/(null|pts|tty)|proc\/)/.test(fd);
  }
  return (CHANGING_CALLS as readonly string[]).includes(syscall) && !result.startsWith("-1 ENOSYS");
}

/**
 * A call's text with what differs from run to run taken out: the scratch
 * directory, loop device numbers (and the names of their notes, .loops/<id>/<n>), btrfs qgroup ids, descriptor numbers, the random part of
 * temporary names, data.
 */
export function callSignature(text: string, dir: string): string {
  return text
    .split(dir)
    .join("…")
    .replace(/\/dev\/loop\d+/g, "/dev/loopN")
    .replace(/(\/\.loops\/[^/"]+\/)\d+/g, "$1N")
    .replace(/\b0x[0-9a-f]{6,}\b/g, "0x…")
    .replace(/lo_number=\d+/g, "lo_number=N")
    .replace(/qgroupid=\d+/g, "qgroupid=N")
    .replace(/\[\{tv_sec=[^\]]*\]/g, "[times]")
    .replace(/\b\d+</g, "<")
    .replace(/\b[0-9a-f]{8}[0-9a-z]{0,8}\b/g, "*")
    .replace(/(write|pwrite64)\((<[^>]*>), .*$/, "$1($2)")
    .replace(/"(\\.|[^"\\])*"\.\.\./g, '"…"');
}

function args(tids: readonly number[], syscalls: string, out: string[]): string[] {
  return ["-e", "quiet=exit,personality,thread-execve,path-resolution", "-y", "-s", "24", "-e", `trace=${syscalls}`, "-e", "signal=none", ...out, ...tids.flatMap((t) => ["-p", String(t)])];
}

/** Start strace; resolves once it has attached to every thread (it says so on stderr). */
function startStrace(argv: string[], tids: readonly number[]): Promise<ChildProcess> {
  const proc = spawn("strace", argv, { stdio: ["ignore", "ignore", "pipe"] });
  return new Promise((resolve, reject) => {
    let err = "";
    let attached = 0;
    proc.stderr!.on("data", (chunk: Buffer) => {
      err += chunk.toString();
      attached = (err.match(/Process \d+ attached/g) ?? []).length;
      if (attached === tids.length) resolve(proc);
    });
    proc.on("exit", (code) => reject(new Error(`strace ended (${code}) before it attached: ${err.trim()}`)));
  });
}

/** Stop an strace that is still running (it detaches, the threads go on); wait until it has. */
async function stopStrace(proc: ChildProcess): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await exited;
  }
}

/** Run `fn` with strace attached to `tids`; every CHANGING_CALLS call each made meanwhile, by thread. */
export async function recordCalls<T>(tids: readonly number[], outBase: string, fn: () => Promise<T>): Promise<{ value: T; calls: Map<number, TracedCall[]> }> {
  const proc = await startStrace(args(tids, CHANGING_CALLS.join(","), ["-o", outBase, "--output-separately"]), tids);
  let value: T;
  try {
    value = await fn();
  } finally {
    await stopStrace(proc);
  }
  const calls = new Map<number, TracedCall[]>();
  for (const tid of tids) {
    let text = "";
    try {
      text = readFileSync(`${outBase}.${tid}`, "utf8");
    } catch {
      // no call at all
    }
    calls.set(tid, parseTrace(text));
  }
  return { value, calls };
}

export type KillMoment = "before" | "after";

/**
 * strace attached to thread `tid` of process `pid`, ready to stop it at its
 * `nth` call of `syscall`: SIGKILL as the call enters ("before"), or
 * SIGSTOP, which lets the call run and stops the process as it returns
 * ("after"; the caller then kills it). `hit` resolves once the process is
 * dead or stopped. `calls()` is what the thread did of `syscall`
 * meanwhile, the last one the call it was stopped at.
 */
export class ArmedStrace {
  private constructor(
    private readonly proc: ChildProcess,
    private readonly log: string,
    readonly hit: Promise<void>,
  ) {}

  /** `resume`: for a process held stopped (crash-startup.ts), let it go once strace is attached. */
  static async arm(
    pid: number,
    tid: number,
    syscall: string,
    nth: number,
    moment: KillMoment,
    log: string,
    dead: Promise<unknown>,
    resume?: () => Promise<void>,
  ): Promise<ArmedStrace> {
    const signal = moment === "before" ? "SIGKILL" : "SIGSTOP";
    const inject = `inject=${syscall}:signal=${signal}:when=${nth}`;
    const proc = await startStrace(args([tid], syscall, ["-e", inject, "-o", log]), [tid]);
    await resume?.();
    const hit = moment === "before" ? dead.then(() => undefined) : Promise.race([dead.then(() => undefined), stopped(pid)]);
    return new ArmedStrace(proc, log, hit);
  }

  /** Detach (if the call never came) and wait for strace to end. */
  async done(): Promise<void> {
    await stopStrace(this.proc);
  }

  calls(): TracedCall[] {
    try {
      return parseTrace(readFileSync(this.log, "utf8"));
    } catch {
      return [];
    }
  }
}

/** Resolves when some thread of `pid` is in a group stop (state T), or the process is gone. */
function stopped(pid: number): Promise<void> {
  return untilThreads(pid, (states) => states.includes("T"), 2);
}

/** The state of thread `tid` of `pid` (R, S, D, T, …) as /proc shows it now; undefined once it has ended. */
export function threadState(pid: number, tid: number): string | undefined {
  try {
    return /^\d+ \(.*\) (\S) /.exec(readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8"))?.[1];
  } catch {
    return undefined;
  }
}

/** Resolves once `done` holds of the states of `pid`'s threads (threadState), asked every `ms`, or once the process is gone. */
export async function untilThreads(pid: number, done: (states: (string | undefined)[]) => boolean, ms: number): Promise<void> {
  for (;;) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      return;
    }
    if (done(tasks.map((t) => threadState(pid, Number(t))))) return;
    await new Promise((r) => setTimeout(r, ms));
  }
}

/**
 * The thread of `pid` that runs libuv's pool (with UV_THREADPOOL_SIZE=1
 * there is one): of the threads other than the main one, the one that has
 * made by far the most read and write calls. V8's threads make none, or
 * now and then one.
 */
export function poolThread(pid: number): number {
  const calls = readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .filter((t) => t !== pid)
    .map((tid) => {
      const io = readFileSync(`/proc/${pid}/task/${tid}/io`, "utf8");
      return { tid, n: Number(/syscr: (\d+)/.exec(io)?.[1]) + Number(/syscw: (\d+)/.exec(io)?.[1]) };
    })
    .sort((a, b) => b.n - a.n);
  if (!calls[0] || calls[0].n < 10 || (calls[1] && calls[1].n * 4 > calls[0].n)) {
    throw new Error(`cannot tell process ${pid}'s pool thread: read and write calls by thread ${JSON.stringify(calls)}`);
  }
  return calls[0].tid;
}
