/**
 * Test helper: a `csi-lab` command that serves until stopped (`rpc serve`,
 * `lab`), started the way a person starts one and walks away from — as the
 * child of a shell (`sh -c 'csi-lab … & wait $!'`) or of npm (`npx csi-lab …`)
 * — with what a test needs to see whether it ends with that parent: its
 * pid, its parent's, its output, and whether its port is free again.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as dgram from "node:dgram";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { PROTO_DIR } from "../../src/rpc-demo/codecs/schema";

export const REPO = path.join(PROTO_DIR, "..");
export const BIN = path.join(REPO, "bin", "csi-lab.js");

/**
 * `sh -c '"$0" "$@" & wait $!' node bin/csi-lab.js ARGS…`: the shell stays the command's parent, waiting for it,
 * and exits with the command's status (`wait` with no operand would exit 0 whatever the command did).
 */
export const throughShell = (args: string[]): [string, string[]] => ["sh", ["-c", '"$0" "$@" & wait $!', process.execPath, BIN, ...args]];
/** `npx csi-lab ARGS…`: npm → sh → the command (npx runs this checkout's own bin). */
export const throughNpx = (args: string[]): [string, string[]] => ["npx", ["csi-lab", ...args]];

/** A process's state letter from /proc (Z: ended, not yet reaped), or undefined once it is gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return undefined;
  }
}
export const running = (pid: number) => ![undefined, "Z", "X"].includes(procState(pid));
export const parentOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);

export async function until<T>(what: string, probe: () => T | undefined, ms = 10_000): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
  }
  throw new Error(`gave up waiting (${ms} ms) for ${what}`);
}

/** The node process running bin/csi-lab.js among the descendants of `root`. */
function csiLabUnder(root: number): number | undefined {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const ppid = parentOf(Number(name));
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone meanwhile
    }
  }
  for (const queue = [...(children.get(root) ?? [])]; queue.length; ) {
    const pid = queue.shift()!;
    let argv: string[] = [];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (/^node/.test(path.basename(argv[0]!)) && /(^|\/)csi-lab(\.js)?$/.test(argv[1] ?? "")) return pid;
    queue.push(...(children.get(pid) ?? []));
  }
  return undefined;
}

export class StartedCommand {
  stdout = "";
  stderr = "";
  /** The csi-lab process itself (the spawned process is its shell or npm). */
  pid!: number;
  private constructor(readonly proc: ChildProcess) {}

  /** Start it and wait until its stdout matches `ready`. */
  static async start([command, args]: [string, string[]], ready: RegExp): Promise<StartedCommand> {
    const s = new StartedCommand(spawn(command, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] }));
    s.proc.stdout!.setEncoding("utf8").on("data", (c: string) => (s.stdout += c));
    s.proc.stderr!.setEncoding("utf8").on("data", (c: string) => (s.stderr += c));
    await until(`${ready} on its stdout:\n${s.stdout}\n${s.stderr}`, () => ready.test(s.stdout), 60_000);
    s.pid = await until("its pid", () => csiLabUnder(s.proc.pid!));
    return s;
  }

  /** Resolves once the command has ended; rejects, with what it said, if it is still running after 10 s. */
  async ended(): Promise<void> {
    await until(`csi-lab (pid ${this.pid}) to exit; it said:\n${this.stdout}\n${this.stderr}`, () => !running(this.pid));
  }

  /** Whatever the test found, nothing is left running. */
  cleanup(): void {
    if (this.pid !== undefined && running(this.pid)) process.kill(this.pid, "SIGKILL");
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
  }
}

/** Can a new listener take host:port? (It is let go again at once.) */
export function portFree(transport: "tcp" | "udp", host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (transport === "udp") {
      const s = dgram.createSocket(net.isIPv6(host) ? "udp6" : "udp4");
      s.once("error", () => resolve(false));
      s.bind(port, host, () => s.close(() => resolve(true)));
      return;
    }
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen({ port, host, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** The TCP ports process `pid` listens on and the UDP ports it has bound, from /proc (its sockets' inodes). */
export function portsOf(pid: number): { transport: "tcp" | "udp"; host: string; port: number }[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const found: { transport: "tcp" | "udp"; host: string; port: number }[] = [];
  for (const [table, transport, host] of [["tcp", "tcp", "127.0.0.1"], ["tcp6", "tcp", "::1"], ["udp", "udp", "127.0.0.1"], ["udp6", "udp", "::1"]] as const) {
    let rows: string[] = [];
    try {
      rows = readFileSync(`/proc/${pid}/net/${table}`, "utf8").trim().split("\n").slice(1);
    } catch {
      continue; // no IPv6 here
    }
    for (const row of rows) {
      // sl local_address rem_address st … inode: TCP's state 0A is LISTEN; a bound UDP socket is 07.
      const f = row.trim().split(/\s+/);
      const listening = transport === "tcp" ? f[3] === "0A" : f[3] === "07";
      if (listening && inodes.has(f[9]!)) found.push({ transport, host, port: parseInt(f[1]!.split(":")[1]!, 16) });
    }
  }
  return found;
}
