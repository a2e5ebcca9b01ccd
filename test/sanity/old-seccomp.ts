/**
 * Preloaded into a driver (`NODE_OPTIONS=--require …/old-seccomp.js`) to
 * make it run as under an older container runtime, whose seccomp profile
 * refuses the system calls that came after it: statx(2) (Linux 4.11;
 * Docker's default profile refused it before Docker 18.04, libseccomp
 * < 2.3.3), openat2(2) (Linux 5.6; refused before Docker 20.10), and the
 * calls that keep the mount table by events (src/mount/mount-events.ts):
 * statmount(2) and listmount(2) (Linux 6.8), and fanotify_init(2), which
 * Docker's profile allows only to a container with CAP_SYS_ADMIN. All fail
 * with EPERM, as such a profile answers (an older kernel answers ENOSYS or
 * EINVAL; the driver treats them alike).
 *
 * Then Node's own file calls fall back to fstatat; the driver's mount-root
 * checks (src/mount/mount-root.ts) answer "unknown" and its node calls read
 * the mount table, as text from mountinfo (src/mount/mountinfo.ts); paths
 * are opened by walking them one component at a time with O_NOFOLLOW
 * (src/mount/open-no-symlinks.ts); and a shared volume's directory is known
 * by its inode's generation instead of its birth time
 * (src/storage/dir-identity.ts).
 *
 * A seccomp filter is a small classic-BPF program the kernel runs on every
 * system call: here, "on x86-64, if the call is one of those, fail it with
 * EPERM; else allow it". It is installed for every thread of the
 * process (SECCOMP_FILTER_FLAG_TSYNC), and threads and processes made
 * later inherit it. Only x86-64's system-call numbers are written here:
 * elsewhere the filter lets everything through, and the tests that use it
 * skip (`filterWorksHere`).
 */
import { readFileSync } from "node:fs";
import koffi from "koffi";

const AUDIT_ARCH_X86_64 = 0xc000003e;
/** The calls the filter can refuse, and their x86-64 numbers. */
const CALLS = { statx: 332, openat2: 437, fanotify_init: 300, statmount: 457, listmount: 458, renameat2: 316 } as const;
export type RefusableCall = keyof typeof CALLS;
/** The calls only a kernel and runtime as new as the mount-event table's have. */
export const MOUNT_EVENT_CALLS: readonly RefusableCall[] = ["fanotify_init", "statmount", "listmount"];
const NR_SECCOMP_X86_64 = 317;
const PR_SET_NO_NEW_PRIVS = 38;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_FILTER_FLAG_TSYNC = 1;
const EPERM = 1;
/**
 * renameat2(2) is not refused by a runtime's profile but by a file system: a Linux NFS client answers
 * EINVAL to RENAME_NOREPLACE (which is all the driver uses the call for), and so does the filter. Not among
 * the calls refused by default; asked for by name (test/sanity/shared-put-back.test.ts).
 */
const ERRNO: Partial<Record<RefusableCall, number>> = { renameat2: 22 };

// Classic BPF opcodes, and what a filter may return.
const LD_W_ABS = 0x20; // A = the 32-bit word at offset k of struct seccomp_data
const JEQ_K = 0x15; // if A == k skip jt instructions, else skip jf
const RET_K = 0x06; // return k
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_ALLOW = 0x7fff0000;
// Offsets in struct seccomp_data: the call's number, then the architecture.
const DATA_NR = 0;
const DATA_ARCH = 4;

/** Whether this machine's calls are the ones the filter knows. */
export const filterWorksHere = process.arch === "x64";

function install(calls: readonly RefusableCall[]): void {
  const refused = calls.map((c) => CALLS[c]);
  const program: [code: number, jt: number, jf: number, k: number][] = [
    [LD_W_ABS, 0, 0, DATA_ARCH],
    [JEQ_K, 0, 2 * refused.length + 1, AUDIT_ARCH_X86_64], // another architecture: allow
    [LD_W_ABS, 0, 0, DATA_NR],
    // each refused call: if it is this one, the next instruction fails it with its errno; else skip that
    ...calls.flatMap((c, i): [number, number, number, number][] => [
      [JEQ_K, 0, 1, refused[i]!],
      [RET_K, 0, 0, SECCOMP_RET_ERRNO | (ERRNO[c] ?? EPERM)],
    ]),
    [RET_K, 0, 0, SECCOMP_RET_ALLOW], // anything else
  ];
  // struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
  const filter = Buffer.alloc(8 * program.length);
  program.forEach(([code, jt, jf, k], i) => {
    filter.writeUInt16LE(code, i * 8);
    filter.writeUInt8(jt, i * 8 + 2);
    filter.writeUInt8(jf, i * 8 + 3);
    filter.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; } (x86-64: the pointer at offset 8)
  const fprog = Buffer.alloc(16);
  fprog.writeUInt16LE(program.length, 0);
  fprog.writeBigUInt64LE(BigInt(koffi.address(filter) as number | bigint), 8);

  const libc = koffi.load("libc.so.6");
  const prctl = libc.func("int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)") as (...a: number[]) => number;
  const syscall = libc.func("long syscall(long nr, unsigned long a, unsigned long b, void *c)") as (nr: number, a: number, b: number, c: Buffer) => number;
  // Installing a filter needs CAP_SYS_ADMIN or no_new_privs; the latter is
  // harmless here (a root process gains nothing from set-user-ID programs).
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) !== 0) throw new Error(`prctl(PR_SET_NO_NEW_PRIVS) failed: errno ${koffi.errno()}`);
  if (syscall(NR_SECCOMP_X86_64, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, fprog) !== 0) {
    throw new Error(`seccomp(SECCOMP_SET_MODE_FILTER) failed: errno ${koffi.errno()}`);
  }
}

const asked = process.env.CSI_LAB_TEST_OLD_SECCOMP;
if (filterWorksHere && asked) {
  const calls = asked.split(",").filter((c): c is RefusableCall => c in CALLS);
  if (calls.length === 0) throw new Error(`CSI_LAB_TEST_OLD_SECCOMP names no call the filter knows: ${asked}`);
  install(calls);
}

/**
 * The environment under which a process refuses itself `calls` (by default
 * all of them: statx, openat2 and the mount-event calls): a copy of this
 * process's, with this file preloaded.
 */
export function oldSeccompEnv(calls: readonly RefusableCall[] = (Object.keys(CALLS) as RefusableCall[]).filter((c) => c !== "renameat2")): NodeJS.ProcessEnv {
  const preload = `--require ${JSON.stringify(__filename)}`;
  return { ...process.env, NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" "), CSI_LAB_TEST_OLD_SECCOMP: calls.join(",") };
}

/** Does process `pid` run under a seccomp filter? (/proc/PID/status: "Seccomp: 2") */
export function underSeccompFilter(pid: number): boolean {
  return /^Seccomp:\s+2$/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
}
