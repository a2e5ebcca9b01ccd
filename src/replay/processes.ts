/**
 * The driver run the way the manifests run it, on one machine: a node
 * plugin (the DaemonSet's container) and a controller (the Deployment's),
 * each a `csi-lab driver` process with the container's own arguments, in
 * a mount namespace of its own.
 *
 * A container sees host directories through its volumes. Here a directory
 * stands for the node's file system (`hostDir`): a hostPath volume's path
 * P is hostDir+P, an emptyDir is a directory of its own, and every path in
 * the container's arguments is translated through its volume mounts — so
 * the controller's --root is its own emptyDir, as in the cluster, and the
 * node plugin's socket lands in the kubelet's plugins directory.
 *
 * Mount propagation is what makes the node plugin's mounts reach the
 * kubelet and the pods: the DaemonSet mounts the kubelet's directories
 * with Bidirectional propagation. The same is done here: those host
 * directories are made shared mounts in the replay's own namespace
 * (standing for the host's), and the node plugin's namespace is a copy
 * that keeps them shared, so a mount the plugin makes there appears on
 * the "host", where the replay (playing kubelet and pod) checks it.
 *
 * A restart is what `kubectl delete pod` does to the node plugin: the
 * process is killed and a new container starts, in a new mount namespace
 * that inherits the node's mounts. The first plugin runs in namespace A,
 * held open by a `sleep` (the "host's" view for containers); each restart
 * starts in a fresh copy of A, and sees its data directory through another
 * path (bound there inside the new namespace) — as a new container may see
 * paths differently from the dead one, which is what breaks a driver that
 * recognises its loop devices or mounts by path strings.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, type Dirent } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import * as path from "node:path";
import { connect, type CsiClient } from "../client/csi-client";
import { fileIdentity, loopBacks, type FileIdentity } from "../mount/loop";
import { readMountInfo } from "../mount/mountinfo";
import { flag, type Deployment, type DriverContainer, type Process } from "./deployment";
import { loopsUnder } from "./kubelet-devices";
import type { ReplayTarget } from "./run";

export interface ReplayHostOptions {
  deployment: Deployment;
  /** the directory standing for the node's file system */
  hostDir: string;
  /** host paths kept elsewhere, e.g. the driver's data directory on a quota file system */
  hostPaths?: Record<string, string>;
  /** bin/csi-lab.js */
  bin: string;
  /** a free port on 127.0.0.1 for each process's --metrics-address (the manifests' ":9810" would collide) */
  metricsPorts?: Partial<Record<Process, number>>;
  /** each log line of each process */
  onLog?: (process: Process, line: string) => void;
}

interface Running {
  proc: ChildProcess;
  exit: Promise<void>;
  client: CsiClient;
  logs: string[];
}

export class ReplayHost implements ReplayTarget {
  readonly ownMounts: string[] = [];
  private readonly running = new Map<Process, Running>();
  private holder: ChildProcess | undefined;
  private restarts = 0;

  /** Each process's metrics port: the one asked for, or another if that one was taken meanwhile. */
  private readonly ports: Partial<Record<Process, number>>;

  private constructor(private readonly opts: ReplayHostOptions) {
    this.ports = { ...opts.metricsPorts };
  }

  /** The port a process's metrics listener is on, if it has one. */
  metricsPort(process: Process): number | undefined {
    return this.ports[process];
  }

  /** Lay out the host's directories, make the Bidirectional ones shared, and start both processes. */
  static async start(opts: ReplayHostOptions): Promise<ReplayHost> {
    const host = new ReplayHost(opts);
    try {
      await host.setUp();
    } catch (err) {
      await host.stop();
      throw err;
    }
    return host;
  }

  /** A host path as the replay sees it. */
  hostPath(p: string): string {
    for (const [from, to] of Object.entries(this.opts.hostPaths ?? {})) if (p === from || p.startsWith(from + "/")) return to + p.slice(from.length);
    return path.join(this.opts.hostDir, p);
  }

  /** The kubelet directory the node plugin was given (--kubelet-dir), on the host. */
  get kubeletDir(): string {
    return this.containerPath("node", flag(this.opts.deployment.node.args, "kubelet-dir") ?? "/var/lib/kubelet");
  }

  /** The node plugin's --root, on the host. */
  get nodeRoot(): string {
    return this.containerPath("node", flag(this.opts.deployment.node.args, "root") ?? "/var/lib/csi-lab");
  }

  /**
   * A path in a driver container, as the host sees it: through the
   * container's volume mounts. A path no volume is mounted at or above is
   * the image's own file system, which holds none of the node's files: it
   * lies in a directory of the container's own (made by nobody), so a
   * driver that is given a host directory its container does not mount
   * finds nothing there, as in the cluster. (A directory that holds mount
   * points, such as --kubelet-dir above pods/ and plugins/, reads as the
   * host's: the paths the kubelet passes are the same strings in both.)
   */
  containerPath(process: Process, p: string): string {
    const c = this.container(process);
    const m = c.mounts.filter((x) => p === x.containerPath || p.startsWith(x.containerPath + "/")).sort((a, b) => b.containerPath.length - a.containerPath.length)[0];
    if (!m) return c.mounts.some((x) => x.containerPath.startsWith(p.replace(/\/$/, "") + "/")) ? this.hostPath(p) : this.imagePath(c, p);
    const base = m.hostPath !== undefined ? this.hostPath(m.hostPath) : this.emptyDir(c, m.volume);
    return base + p.slice(m.containerPath.length);
  }

  client(process: Process): CsiClient {
    const r = this.running.get(process);
    if (!r) throw new Error(`the ${process} process is not running`);
    return r.client;
  }

  logs(process: Process): string[] {
    return this.running.get(process)?.logs ?? [];
  }

  onDisk(volumeId: string): boolean | undefined {
    if (!/^hp-[0-9a-f]{32}$/.test(volumeId)) return undefined;
    return existsSync(path.join(this.nodeRoot, "volumes", `${volumeId}.json`)) || existsSync(path.join(this.nodeRoot, "data", volumeId));
  }

  async restart(process: Process): Promise<void> {
    await this.kill(process, "SIGKILL");
    if (process === "controller") return this.launch("controller", ["unshare", "--mount", "--propagation", "private", "--"]);
    // A new container: a copy of the node's namespace, the data directory seen through another path
    // (recursively, as a container runtime binds a hostPath volume: a memory volume's tmpfs comes too).
    const root = this.nodeRoot;
    const view = path.join(this.opts.hostDir, "views", String(++this.restarts));
    mkdirSync(view, { recursive: true });
    const pid = this.holder!.pid!;
    const wrap = ["nsenter", "-t", String(pid), "-m", "--", "unshare", "--mount", "--propagation", "unchanged", "--", "sh", "-c", 'mount --rbind "$1" "$2" && shift 2 && exec "$@"', "sh", root, view];
    await this.launch("node", wrap, (arg) => (arg === `--root=${root}` ? `--root=${view}` : arg));
  }

  /**
   * Loop devices attached to the node plugin's image files ("/dev/loopN
   * file"): none once every volume is unstaged. Found by the files' device
   * and inode, as the driver finds them: the path a device shows is the one
   * its attacher saw, which from here may be "/data/hp-…" (a mount of
   * another namespace) — a path prefix would miss it.
   */
  loopDevices(): string[] {
    return attachedLoops(this.nodeRoot).map(([dev, file]) => `${dev} ${file}`);
  }

  private under(): (p: string) => boolean {
    const roots = [this.opts.hostDir, ...Object.values(this.opts.hostPaths ?? {})];
    return (p: string) => roots.some((r) => p === r || p.startsWith(r + "/"));
  }

  /** Stop both processes and the namespace holder; unmount what is left under the host directory and detach its loop devices (the kubelet's, the driver's). */
  async stop(): Promise<void> {
    for (const p of [...this.running.keys()]) await this.kill(p, "SIGTERM");
    if (this.holder && this.holder.exitCode === null) {
      const gone = new Promise((r) => this.holder!.once("exit", r));
      this.holder.kill("SIGKILL");
      await gone;
    }
    // The kubelet's own loop devices on its binds of raw block devices, left by a replay that stopped half-way.
    for (const loop of loopsUnder(this.opts.hostDir)) spawnSync("losetup", ["-d", loop.split(" ")[0]!]);
    const under = this.under();
    for (const m of [...readMountInfo()].reverse()) if (under(m.mountPoint)) spawnSync("umount", ["-l", m.mountPoint]);
    for (const [dev] of attachedLoops(this.nodeRoot)) spawnSync("losetup", ["-d", dev]);
    rmSync(this.opts.hostDir, { recursive: true, force: true });
  }

  private container(process: Process): DriverContainer {
    const c = process === "node" ? this.opts.deployment.node : this.opts.deployment.controller;
    if (!c) throw new Error("the manifests deploy no controller");
    return c;
  }

  private imagePath(c: DriverContainer, p: string): string {
    return path.join(this.opts.hostDir, "image", c.workload.split("/").pop()!, p);
  }

  private emptyDir(c: DriverContainer, volume: string): string {
    return path.join(this.opts.hostDir, "emptydir", c.workload.split("/").pop()!, volume);
  }

  private async setUp(): Promise<void> {
    for (const process of ["node", "controller"] as const) {
      if (process === "controller" && !this.opts.deployment.controller) continue;
      const c = this.container(process);
      for (const m of c.mounts) mkdirSync(m.hostPath !== undefined ? this.hostPath(m.hostPath) : this.emptyDir(c, m.volume), { recursive: true });
    }
    mkdirSync(this.kubeletDir, { recursive: true });
    for (const m of this.opts.deployment.node.mounts.filter((x) => x.propagation === "Bidirectional" && x.hostPath !== undefined)) {
      const dir = this.hostPath(m.hostPath!);
      for (const args of [["--bind", dir, dir], ["--make-shared", dir]]) {
        const r = spawnSync("mount", args, { encoding: "utf8" });
        if (r.status !== 0) throw new Error(`mount ${args.join(" ")}: ${r.stderr || r.error?.message}`);
      }
      this.ownMounts.push(dir);
    }
    this.holder = spawn("unshare", ["--mount", "--propagation", "unchanged", "--", "sleep", "infinity"], { stdio: "ignore" });
    await waitForNewNamespace(this.holder);
    await this.launch("node", ["nsenter", "-t", String(this.holder.pid), "-m", "--"]);
    if (this.opts.deployment.controller) await this.launch("controller", ["unshare", "--mount", "--propagation", "private", "--"]);
  }

  /**
   * Start a process's driver behind `wrapper` (a namespace), with its
   * container's arguments translated to host paths. A free port found
   * beforehand can be taken by another program before the driver binds it
   * (the driver then stops at once, saying EADDRINUSE): another port is
   * tried, up to three times.
   */
  private async launch(process: Process, wrapper: string[], edit: (arg: string) => string = (a) => a): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.launchOnce(process, wrapper, edit);
      } catch (err) {
        const portTaken = this.ports[process] !== undefined && /EADDRINUSE/.test((err as Error).message);
        if (!portTaken || attempt === 3) throw err;
        this.ports[process] = await freePort();
      }
    }
  }

  private async launchOnce(process: Process, wrapper: string[], edit: (arg: string) => string): Promise<void> {
    const c = this.container(process);
    const args = c.args.map((a) => edit(this.translate(process, a))).filter((a) => a !== "");
    const [cmd, ...rest] = [...wrapper, globalThis.process.execPath, this.opts.bin, ...args];
    const proc = spawn(cmd!, rest, { stdio: ["ignore", "ignore", "pipe"] });
    const logs: string[] = [];
    let buf = "";
    let ready: () => void = () => undefined;
    const isReady = new Promise<void>((r) => (ready = r));
    proc.stderr!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line);
        this.opts.onLog?.(process, line);
        if (line.includes('"msg":"ready"')) ready();
      }
    });
    const exit = new Promise<void>((r) => proc.once("exit", () => r()));
    let timer: NodeJS.Timeout | undefined;
    const failed = Promise.race([
      exit.then(() => Promise.reject(new Error(`the ${process} process exited before it was ready:\n${logs.join("\n")}`))),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the ${process} process was not ready in 20 s:\n${logs.join("\n")}`)), 20_000))),
    ]);
    try {
      await Promise.race([isReady, failed]);
    } catch (err) {
      proc.kill("SIGKILL");
      throw err;
    } finally {
      clearTimeout(timer);
    }
    failed.catch(() => undefined);
    const endpoint = flag(args, "endpoint")!;
    this.running.set(process, { proc, exit, client: connect(endpoint), logs });
  }

  /** One argument of a driver container, on this host: container paths through its mounts, the metrics address on loopback. */
  private translate(process: Process, arg: string): string {
    const m = /^(--[^=]+=)(.*)$/.exec(arg);
    if (!m) return arg;
    const [, key, value] = m as unknown as [string, string, string];
    if (key === "--metrics-address=") {
      const port = this.ports[process];
      return port ? `${key}127.0.0.1:${port}` : "";
    }
    if (value.startsWith("unix://")) return `${key}unix://${this.containerPath(process, value.slice("unix://".length))}`;
    if (value.startsWith("/")) return key + this.containerPath(process, value);
    return arg;
  }

  private async kill(process: Process, signal: NodeJS.Signals): Promise<void> {
    const r = this.running.get(process);
    if (!r) return;
    this.running.delete(process);
    r.client.close();
    if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill(signal);
    await r.exit;
  }
}

/** A port on 127.0.0.1 that nothing listens on now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Until `unshare` has made its namespace: the holder's mount namespace differs from ours. */
async function waitForNewNamespace(holder: ChildProcess): Promise<void> {
  const ours = readlinkSync("/proc/self/ns/mnt");
  for (let i = 0; i < 200; i++) {
    try {
      if (holder.exitCode !== null) break;
      if (readlinkSync(`/proc/${holder.pid}/ns/mnt`) !== ours && readFileSync(`/proc/${holder.pid}/comm`, "utf8").trim() === "sleep") return;
    } catch {
      // not there yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("unshare did not make a mount namespace (util-linux, CAP_SYS_ADMIN)");
}

/** Loop devices attached to a regular file under `root` (its data, .tmp and .trash): [/dev/loopN, file]. */
function attachedLoops(root: string): [string, string][] {
  const files: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isFile()) files.push(path.join(dir, e.name));
      else if (e.isDirectory() && depth > 0) walk(path.join(dir, e.name), depth - 1);
    }
  };
  for (const sub of ["data", ".tmp", ".trash"]) walk(path.join(root, sub), 2);
  const identities = files.map((f) => [f, fileIdentity(f)] as const).filter((x): x is readonly [string, FileIdentity] => x[1] !== undefined);
  const out: [string, string][] = [];
  for (const name of readdirSync("/sys/block").filter((n) => /^loop\d+$/.test(n))) {
    const n = Number(name.slice(4));
    const match = identities.find(([, id]) => loopBacks(n, id));
    if (match) out.push([`/dev/${name}`, match[0]]);
  }
  return out;
}
