/**
 * Ending with the process that started us.
 *
 * `npx csi-lab driver &` starts npm, which starts a shell, which starts the
 * driver. A SIGTERM to npm's pid ends npm and the shell, not the driver,
 * which would go on serving, orphaned, its socket in place. The same holds
 * for every command that serves until it is stopped (`csi-lab rpc serve`,
 * `csi-lab lab`): orphaned, it keeps its port, and the next start on that
 * port fails; for `csi-lab rpc call` and `rpc walkthrough`, whose call may
 * wait days for its deadline; and for `rpc csi`, which started a driver.
 * So at start-up such a command asks the kernel to send it SIGTERM when
 * its parent process ends (prctl(PR_SET_PDEATHSIG)); its SIGTERM handler
 * then shuts it down as for any SIGTERM (the driver: in-flight calls
 * finish, the socket is removed; rpc serve and the lab: the listener is
 * closed; rpc call and walkthrough: their sockets go as they exit; rpc
 * csi: its volume is deleted and its driver stopped) and says why.
 *
 * Not asked where the command is PID 1, or its parent is outside its PID
 * namespace (getppid() answers 0): a container, as in Kubernetes. There
 * the runtime stops it with a SIGTERM of its own, and the parent is the
 * runtime's shim, whose comings and goings are none of its business.
 *
 * The kernel's "parent" is the thread that forked us. Shells, Node.js, npm
 * and systemd fork from a thread that lives as long as they do; a program
 * that forks from a short-lived thread would stop the command early — run
 * it under a supervisor rather than from such a program. A parent with
 * other threads (Node.js has several) ends thread by thread: the first
 * SIGTERM comes as the thread that forked us exits, while getppid() still
 * names the parent, whose other threads are still going; and the kernel
 * sends it again as each thread it hands us to exits (prctl(2)). So the
 * parent counts as ended once its main thread has exited (a zombie in
 * /proc, its other threads going), and stop-signals.ts takes the repeats
 * for the one end they are.
 */
import { readFileSync } from "node:fs";
import { constants } from "node:os";
import koffi from "koffi";
import { libc } from "../mount/libc";

// Read as this module loads, early in start-up (src/cli.ts imports it for
// every command): a parent that ended before the request below is then seen
// by comparing with it.
const parentAtStart = process.ppid;

const PR_SET_PDEATHSIG = 1;
// Variadic in C: each argument after the first is passed as (type, value).
const prctl = libc.func("int prctl(int option, ...)") as (...args: unknown[]) => number;

export type ParentWatch = { armed: true; parent: number } | { armed: false; why: string };

/**
 * Ask for SIGTERM when the parent process ends (see above for when it is not
 * asked). `subject` names this process in the reason it was not asked ("the driver").
 * Install the SIGTERM handler first: a parent already gone means a SIGTERM at once.
 */
export function stopWithParent(subject: string): ParentWatch {
  if (process.pid === 1) return { armed: false, why: `${subject} is PID 1 (a container's main process)` };
  if (parentAtStart === 0) return { armed: false, why: "the parent is outside this PID namespace (a container runtime)" };
  if (prctl(PR_SET_PDEATHSIG, "unsigned long", constants.signals.SIGTERM) !== 0) {
    return { armed: false, why: `prctl(PR_SET_PDEATHSIG) failed: errno ${koffi.errno()}` };
  }
  // It ended before the request was made: no signal will come, so send it.
  if (process.ppid !== parentAtStart) process.kill(process.pid, "SIGTERM");
  return { armed: true, parent: parentAtStart };
}

/** The pid of the watched parent if it has ended or is ending (a SIGTERM is then its doing), else undefined. */
export function endedParent(watch: ParentWatch): number | undefined {
  if (!watch.armed) return undefined;
  return process.ppid !== watch.parent || mainThreadGone(watch.parent) ? watch.parent : undefined;
}

/** Has process `pid`'s main thread exited: /proc says zombie (or dead, or nothing), its other threads still ending? */
function mainThreadGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3); // after "pid (comm) "
    return state === "Z" || state === "X";
  } catch {
    return true;
  }
}
