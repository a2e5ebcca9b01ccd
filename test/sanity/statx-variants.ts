/**
 * Suites that run twice: as the driver runs where statx(2) answers (Linux
 * 5.8 and later: it says whether a path is the root of a mount and what is
 * mounted there, and a file's birth time), and as it runs where statx is
 * refused (an older kernel, or a seccomp profile; refuse-statx.ts). Then
 * every node call reads the mount table, Node's own file calls fall back
 * to stat(2), and a shared volume's directory is known by its inode number
 * alone — and every refusal, and every clean-up, must hold all the same.
 */
import assert from "node:assert/strict";
import { startDriver, type DriverOptions, type DriverProcess } from "./harness";
import { refusesStatx, refuseStatxEnv, underSeccompFilter } from "./refuse-statx";

export interface StatxVariant {
  /** Appended to the suite's title. */
  title: string;
  env?: NodeJS.ProcessEnv;
  /** This machine cannot run the variant (the filter knows x86-64 only). */
  skip: boolean;
}

export const STATX_VARIANTS: readonly StatxVariant[] = [
  { title: "", env: undefined, skip: false },
  { title: " (statx refused)", env: refuseStatxEnv(), skip: !refusesStatx },
];

/** Start a driver for a variant; where statx is to be refused, check the filter is in place. */
export async function startFor(variant: StatxVariant, opts: DriverOptions = {}): Promise<DriverProcess> {
  const d = await startDriver({ ...opts, env: variant.env ?? opts.env });
  if (variant.env) assert.ok(underSeccompFilter(d.proc.pid!), "the driver runs under the statx-refusing filter");
  return d;
}
