/**
 * kill -9 at a chosen instant, for the crash tests: preloaded into a driver
 * (NODE_OPTIONS="--require <this file>"), it wraps one of fs.promises'
 * calls and sends the process SIGKILL right after the Nth call whose
 * arguments match, once the call has done its work on disk. Everything
 * else is the real driver on the real disk; this only picks the moment
 * that a crash test cannot hit by timing. (For every instant of an RPC,
 * synchronous and foreign calls included, see crash-explorer.ts.)
 *
 *   CSI_LAB_CRASH_OP     the fs.promises function, e.g. "rename"
 *   CSI_LAB_CRASH_MATCH  a regular expression the call's arguments (joined by " -> ") must match
 *   CSI_LAB_CRASH_NTH    which matching call (default 1)
 */
import { promises as fsp } from "node:fs";

const op = process.env.CSI_LAB_CRASH_OP as keyof typeof fsp | undefined;
if (op) {
  const match = new RegExp(process.env.CSI_LAB_CRASH_MATCH ?? ".");
  let left = Number(process.env.CSI_LAB_CRASH_NTH ?? "1");
  const original = fsp[op] as (...args: unknown[]) => Promise<unknown>;
  (fsp as unknown as Record<string, unknown>)[op] = async function (this: unknown, ...args: unknown[]) {
    const hit = match.test(args.map(String).join(" -> ")) && --left === 0;
    const result = await original.apply(this, args);
    if (hit) {
      process.kill(process.pid, "SIGKILL");
      await new Promise(() => {}); // nothing after the crash runs
    }
    return result;
  };
}

/** The environment that preloads this hook into a driver. */
export function crashEnv(op: string, match: string, nth = 1): NodeJS.ProcessEnv {
  const preload = `--require ${__filename}`;
  return {
    ...process.env,
    NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" "),
    CSI_LAB_CRASH_OP: op,
    CSI_LAB_CRASH_MATCH: match,
    CSI_LAB_CRASH_NTH: String(nth),
  };
}
