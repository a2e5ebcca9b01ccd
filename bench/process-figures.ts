/**
 * What the benchmarks share besides starting a driver (driver-command.ts):
 * their `--param key=value` StorageClass parameters, and a process's
 * resident size and CPU time as the kernel counts them.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** `--param key=value` flags as CreateVolume parameters; a flag without "=" (or with an empty key) is an error. */
export function parseParams(flags: readonly string[] | undefined): Record<string, string> {
  const parameters: Record<string, string> = {};
  for (const kv of flags ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new Error(`--param wants key=value, got ${kv}`);
    parameters[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return parameters;
}

/** A process's resident set size (VmRSS of /proc/PID/status) in MiB. */
export function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;
}

/** Clock ticks per second, the unit of /proc/PID/stat's CPU times: asked of getconf once, when first needed. */
let clkTck: number | undefined;
function ticksPerSecond(): number {
  return (clkTck ??= Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100);
}

/** CPU a process has used so far, every thread of it, user and system (utime + stime of /proc/PID/stat), in ms. */
export function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / ticksPerSecond();
}
