/**
 * Suites that run twice: as the driver runs on a current kernel and
 * runtime, and as it runs under an older container runtime's seccomp
 * profile, which refuses statx(2), openat2(2) and the calls that keep the
 * mount table by events (old-seccomp.ts). Then every node call reads the
 * mount table, as mountinfo's text, paths are walked one component at
 * a time, Node's own file calls fall back to stat(2), and a shared volume's
 * directory is known by its inode's generation — and every refusal, and
 * every clean-up, must hold all the same.
 */
import assert from "node:assert/strict";
import { startDriver, type DriverOptions, type DriverProcess } from "./harness";
import { filterWorksHere, oldSeccompEnv, underSeccompFilter } from "./old-seccomp";

export interface SeccompVariant {
  /** Appended to the suite's title. */
  title: string;
  env?: NodeJS.ProcessEnv;
  /** This machine cannot run the variant (the filter knows x86-64 only). */
  skip: boolean;
}

export const SECCOMP_VARIANTS: readonly SeccompVariant[] = [
  { title: "", env: undefined, skip: false },
  { title: " (statx, openat2 and mount events refused)", env: oldSeccompEnv(), skip: !filterWorksHere },
];

/** Start a driver for a variant; where calls are to be refused, check the filter is in place. */
export async function startFor(variant: SeccompVariant, opts: DriverOptions = {}): Promise<DriverProcess> {
  const d = await startDriver({ ...opts, env: variant.env ?? opts.env });
  if (variant.env) assert.ok(underSeccompFilter(d.proc.pid!), "the driver runs under the seccomp filter");
  return d;
}
