/**
 * The driver's helper programs — mkfs, debugfs, resize2fs, cp and sync
 * (under setpriv), mount(8) — for the crash explorer.
 *
 * Each runs through a wrapper of the same name, first on the driver's
 * PATH, which runs the real program; when the explorer asks (a control
 * file), under strace: to record the program's calls that change the disk
 * or the mount table, or to stop it (SIGSTOP) just after its K-th call of
 * one kind, so that the driver can be killed while the program is at that
 * point. The wrapper starts strace on its own process and waits until it
 * is attached before it execs the program: the program keeps the wrapper's
 * process and parent (a `setpriv --pdeathsig` still ties it to the
 * driver), is counted from its first call, and is one thread, so strace's
 * count is exact. A share agent (setpriv … share-agent.js) is not one of
 * these: it outlives calls, and the explorer follows it as a thread.
 */
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { CHANGING_CALLS, parseTrace, type TracedCall } from "./strace";

const PROGRAMS = ["mkfs.ext4", "mkfs.xfs", "debugfs", "resize2fs", "e2fsck", "setpriv", "mount"];

// Signals are left in the log when stopping: "--- stopped by SIGSTOP ---" is how the explorer sees the stop.
const STRACE = `strace -y -s 24 -e quiet=all`;
const STOPPED = "--- stopped by SIGSTOP ---";

function wrapper(program: string): string {
  return `#!/bin/sh
# csi-lab crash explorer: run the real ${program}, under strace when $CSI_LAB_EXPLORER_BIN/control asks (test/sanity/child-trace.ts).
bin=$CSI_LAB_EXPLORER_BIN
real=$(PATH=$CSI_LAB_EXPLORER_PATH command -v ${program}) || { echo "${program}: not found" >&2; exit 127; }
case "$*" in *share-agent.js*) exec "$real" "$@" ;; esac
if [ -f "$bin/control" ]; then
  n=1
  while ! mkdir "$bin/spawn.${program}.$n" 2>/dev/null; do n=$((n + 1)); done
  dir="$bin/spawn.${program}.$n"
  echo $$ >"$dir/pid"
  read -r mode want syscall nth <"$bin/control"
  if [ "$mode" = record ]; then
    ${STRACE} -e signal=none -e trace=${CHANGING_CALLS.join(",")} -o "$dir/trace" -p $$ </dev/null >/dev/null 2>&1 &
  elif [ "$want" = "${program}.$n" ]; then
    ${STRACE} -e trace="$syscall" -e inject="$syscall:signal=SIGSTOP:when=$nth" -o "$dir/trace" -p $$ </dev/null >/dev/null 2>&1 &
  else
    exec "$real" "$@"
  fi
  until grep -q '^TracerPid:[[:space:]]*[1-9]' /proc/$$/status; do :; done
fi
exec "$real" "$@"
`;
}

/** One run of a helper program: "mkfs.ext4 #1" is the first mkfs.ext4 of an RPC. */
export interface ChildRun {
  name: string;
  calls: TracedCall[];
}

export class ChildPrograms {
  private constructor(readonly dir: string) {}

  /** Write the wrappers into `dir`. */
  static make(dir: string): ChildPrograms {
    mkdirSync(dir, { recursive: true });
    for (const p of PROGRAMS) {
      writeFileSync(path.join(dir, p), wrapper(p));
      chmodSync(path.join(dir, p), 0o755);
    }
    return new ChildPrograms(dir);
  }

  /** What the driver's environment adds: the wrappers first on PATH, and where they find the rest. */
  env(): NodeJS.ProcessEnv {
    return { PATH: `${this.dir}:${process.env.PATH ?? ""}`, CSI_LAB_EXPLORER_BIN: this.dir, CSI_LAB_EXPLORER_PATH: process.env.PATH ?? "" };
  }

  /** From now on, record every helper's changing calls. */
  record(): void {
    this.control("record");
  }

  /** From now on, stop the `run`'s (e.g. "mkfs.ext4 #1") `nth` call of `syscall` as it returns. */
  inject(run: string, syscall: string, nth: number): void {
    this.control(`inject ${run.replace(" #", ".")} ${syscall} ${nth}`);
  }

  /** From now on, run the programs as they are. */
  off(): void {
    rmSync(path.join(this.dir, "control"), { force: true });
  }

  /** The runs since record() or inject(), with what strace saw of each (up to its stop, if it was stopped). */
  runs(): ChildRun[] {
    return this.spawns().map((s) => ({
      name: s.replace(/^spawn\.(.*)\.(\d+)$/, "$1 #$2"),
      calls: parseTrace(read(path.join(this.dir, s, "trace")).split(STOPPED)[0]!),
    }));
  }

  /**
   * Resolves when the run stopped at the call inject() asked for ("stopped",
   * with its process), or ended, or `settled` did before it started.
   */
  async stopped(run: string, settled: Promise<unknown>): Promise<{ pid: number } | undefined> {
    const dir = path.join(this.dir, `spawn.${run.replace(" #", ".")}`);
    let over = false;
    void settled.finally(() => (over = true));
    for (;;) {
      const pid = Number(read(path.join(dir, "pid")).trim());
      if (pid > 0) {
        if (read(path.join(dir, "trace")).includes(STOPPED)) return { pid };
        if (!isRunning(pid)) return undefined;
      } else if (over) {
        return undefined;
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  private control(line: string): void {
    for (const s of this.spawns()) rmSync(path.join(this.dir, s), { recursive: true, force: true });
    writeFileSync(path.join(this.dir, "control"), line + "\n");
  }

  private spawns(): string[] {
    return readdirSync(this.dir).filter((n) => n.startsWith("spawn."));
  }
}

function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function read(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}
