/**
 * What the benchmarks share besides starting a driver (driver-command.ts):
 * their `--param key=value` StorageClass parameters, and a process's
 * resident size as the kernel counts it.
 */
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
