/**
 * Preloaded into a driver (`NODE_OPTIONS=--require …/refuse-statx.js`) to
 * make it run as under a container runtime whose seccomp profile refuses
 * statx(2): the call fails with EPERM, as Docker's default profile made it
 * before Docker 18.04 (libseccomp < 2.3.3), and as an older kernel's
 * ENOSYS does. Node's own file calls then fall back to fstatat; the
 * driver's mount-root checks (src/mount/mount-root.ts) answer "unknown",
 * and its node calls read the mount table instead.
 *
 * A seccomp filter is a small classic-BPF program the kernel runs on every
 * system call: here, "on x86-64, if the call is statx, fail it with EPERM;
 * else allow it". It is installed for every thread of the process
 * (SECCOMP_FILTER_FLAG_TSYNC), and threads made later inherit it. Only
 * x86-64's system-call numbers are written here: elsewhere the filter lets
 * everything through, and the test that uses it skips (`refusesStatx`).
 */
import { readFileSync } from "node:fs";
import koffi from "koffi";

const AUDIT_ARCH_X86_64 = 0xc000003e;
const NR_STATX_X86_64 = 332;
const NR_SECCOMP_X86_64 = 317;
const PR_SET_NO_NEW_PRIVS = 38;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_FILTER_FLAG_TSYNC = 1;
const EPERM = 1;

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
export const refusesStatx = process.arch === "x64";

function install(): void {
  const program: [code: number, jt: number, jf: number, k: number][] = [
    [LD_W_ABS, 0, 0, DATA_ARCH],
    [JEQ_K, 0, 3, AUDIT_ARCH_X86_64], // another architecture: allow
    [LD_W_ABS, 0, 0, DATA_NR],
    [JEQ_K, 0, 1, NR_STATX_X86_64],
    [RET_K, 0, 0, SECCOMP_RET_ERRNO | EPERM],
    [RET_K, 0, 0, SECCOMP_RET_ALLOW],
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

if (refusesStatx && process.env.CSI_LAB_TEST_REFUSE_STATX === "1") install();

/** The environment under which a driver refuses itself statx (a copy of this process's, with this file preloaded). */
export function refuseStatxEnv(): NodeJS.ProcessEnv {
  const preload = `--require ${JSON.stringify(__filename)}`;
  return { ...process.env, NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" "), CSI_LAB_TEST_REFUSE_STATX: "1" };
}

/** Does process `pid` run under a seccomp filter? (/proc/PID/status: "Seccomp: 2") */
export function underSeccompFilter(pid: number): boolean {
  return /^Seccomp:\s+2$/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
}
