/**
 * Test harness: the real driver, as a separate process, on a real socket.
 *
 * Every sanity test talks to `csi-lab driver` exactly as the kubelet and the
 * sidecars would: over gRPC on a unix socket, with a real root directory
 * and real bind mounts. Nothing is mocked, so a test fails when the driver
 * does the wrong thing on a real machine.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { promises as fsp, readdirSync, readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import assert from "node:assert/strict";
import type { ServiceError } from "@grpc/grpc-js";
import { connect, type CsiClient, type ConnectOptions } from "../../src/client/csi-client";
import { Code, codeName } from "../../src/csi/errors";
import { VolumeCapability_AccessMode_Mode as Mode, type VolumeCapability } from "../../src/gen/csi";
import { readMountInfo } from "../../src/mount/mountinfo";
import { unmount } from "../../src/mount/syscalls";
import { forgetDriver, registerDriver } from "./driver-logs";

export { Code, Mode };

const BIN = path.resolve(__dirname, "../../../bin/csi-lab.js");

export interface DriverOptions {
  nodeId?: string;
  mode?: "all" | "controller" | "node";
  extraArgs?: string[];
  /** Reuse an existing scratch directory (for restart tests). */
  dir?: string;
  /** The driver's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Start it without --allow-share (a node that may use no share). */
  noShare?: boolean;
  /** Run it in a mount namespace of its own (unshare, private propagation): as on another node, it sees no mount made after it started, nor others its. */
  ownMounts?: boolean;
}

/**
 * A driver's scratch directory is laid out as a node is:
 *   <dir>/csi.sock    the socket
 *   <dir>/root        --root, where volumes live
 *   <dir>/kubelet     --kubelet-dir: staging and target paths go in here (d.path())
 *   <dir>/share       a local share the driver may use (--allow-share), for nfs volumes
 * Other scratch files (stand-in programs, outside places) go under d.scratch().
 */

export class DriverProcess {
  client!: CsiClient;
  proc!: ChildProcess;
  readonly logs: string[] = [];
  exit: Promise<number | null> = Promise.resolve(null);

  constructor(
    readonly dir: string,
    readonly opts: DriverOptions,
  ) {}

  get socket(): string {
    return path.join(this.dir, "csi.sock");
  }
  get endpoint(): string {
    return `unix://${this.socket}`;
  }
  get root(): string {
    return path.join(this.dir, "root");
  }
  get nodeId(): string {
    return this.opts.nodeId ?? "test-node";
  }
  /** The kubelet directory this driver was given. */
  get kubeletDir(): string {
    return path.join(this.dir, "kubelet");
  }
  /** The local share this driver may use. */
  get share(): string {
    return path.join(this.dir, "share");
  }
  /** A path inside the kubelet directory (for staging and target paths). */
  path(...parts: string[]): string {
    return path.join(this.kubeletDir, ...parts);
  }
  /** A path in the scratch directory, outside the kubelet directory. */
  scratch(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  async start(): Promise<void> {
    this.logs.length = 0;
    await fsp.mkdir(this.kubeletDir, { recursive: true });
    const args = [
      BIN,
      "driver",
      "--endpoint",
      this.endpoint,
      "--node-id",
      this.nodeId,
      "--root",
      this.root,
      "--mode",
      this.opts.mode ?? "all",
      "--kubelet-dir",
      this.kubeletDir,
      ...(this.opts.noShare ? [] : ["--allow-share", this.share]),
      "--log-level",
      "debug",
      ...(this.opts.extraArgs ?? []),
    ];
    // unshare execs the driver: the PID is the driver's.
    const [cmd, argv] = this.opts.ownMounts ? ["unshare", ["--mount", "--propagation", "private", "--", process.execPath, ...args]] : [process.execPath, args];
    this.proc = spawn(cmd, argv, { stdio: ["ignore", "ignore", "pipe"], env: this.opts.env ?? process.env });
    registerDriver(this);
    let buf = "";
    let onReady: () => void = () => undefined;
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    this.proc.stderr!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.logs.push(line);
        if (line.includes('"msg":"ready"')) onReady();
      }
    });
    this.exit = new Promise((resolve) => this.proc.on("exit", (code) => resolve(code)));
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`driver did not become ready:\n${this.logs.join("\n")}`)), 10_000).unref(),
    );
    await Promise.race([ready, timeout, this.exit.then((c) => Promise.reject(new Error(`driver exited (${c}):\n${this.logs.join("\n")}`)))]);
    this.client?.close(); // one a killed driver left: its connection is dead
    this.client = connect(this.endpoint);
  }

  /** Connect a second client, e.g. with an unusual :authority. */
  connect(opts: ConnectOptions = {}): CsiClient {
    return connect(this.endpoint, opts);
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    this.client?.close();
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    return this.exit;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** Log lines as parsed JSON. */
  jsonLogs(): Record<string, unknown>[] {
    return this.logs.flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  }
}

/** Start a driver on a fresh scratch directory. */
export async function startDriver(opts: DriverOptions = {}): Promise<DriverProcess> {
  const dir = opts.dir ?? (await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-test-")));
  const d = new DriverProcess(dir, opts);
  await d.start();
  return d;
}

/** Stop the driver and remove its scratch directory, unmounting anything left under it first. */
export async function destroyDriver(d: DriverProcess | undefined): Promise<void> {
  if (!d) return;
  forgetDriver(d);
  await d.stop();
  await unmountUnder(d.dir);
  detachLoopsUnder(d.dir);
  await fsp.rm(d.dir, { recursive: true, force: true });
}

/**
 * Detach loop devices attached to files under `dir`. A test that fails
 * half-way leaves its block volumes' devices bound; unmountUnder removes
 * the binds, and this the devices, which would otherwise outlive the test.
 */
export function detachLoopsUnder(dir: string, pick: (backing: string) => boolean = () => true): void {
  for (const name of readdirSync("/sys/block").filter((n) => /^loop\d+$/.test(n))) {
    const backing = loopBacking(name);
    if (backing?.startsWith(dir + "/") && pick(backing)) spawnSync("losetup", ["-d", `/dev/${name}`]);
  }
}

/** What loop device `dev` (its number, its name "loopN", or /dev/loopN) is attached to (sysfs), or undefined when it is free. */
export function loopBacking(dev: number | string): string | undefined {
  const name = typeof dev === "number" ? `loop${dev}` : path.basename(dev);
  try {
    return readFileSync(`/sys/block/${name}/loop/backing_file`, "utf8").trim();
  } catch {
    return undefined;
  }
}

export async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readMountInfo()).filter((m) => m.mountPoint === dir || m.mountPoint.startsWith(dir + "/"));
  for (const m of mounts.reverse()) {
    try {
      unmount(m.mountPoint, { detach: true });
    } catch {
      // already gone
    }
  }
}

/**
 * Driver flags for tests about directory volumes specifically (they look
 * inside data/<id>): without them a root with no quotas makes image volumes.
 */
export const DIR_VOLUMES = ["--default-capacity-mode", "none"];

export function mountCapability(mode: Mode = Mode.SINGLE_NODE_WRITER, mountFlags: string[] = []): VolumeCapability {
  return { mount: { fsType: "", mountFlags, volumeMountGroup: "" }, accessMode: { mode } };
}

export function blockCapability(mode: Mode = Mode.SINGLE_NODE_WRITER): VolumeCapability {
  return { block: {}, accessMode: { mode } };
}

let counter = 0;
/** A name unique within this test run. */
export function uniqueName(prefix = "vol"): string {
  return `${prefix}-${process.pid}-${++counter}`;
}

/**
 * `s` as one word of a shell script, whatever it holds (spaces, quotes, $, \):
 * scratch paths are under TMPDIR, which may hold any of them.
 */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A regular expression source matching `s` literally (a path in an expected message). */
export function literal(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Expect the promise to fail with a gRPC status `code` (and a message matching `message`, if given). */
export async function expectCode(p: Promise<unknown>, code: Code, message?: RegExp): Promise<ServiceError> {
  let err: ServiceError | undefined;
  try {
    await p;
  } catch (e) {
    err = e as ServiceError;
  }
  assert.ok(err, `expected ${codeName(code)}, but the call succeeded`);
  assert.equal(codeName(err.code), codeName(code), `expected ${codeName(code)}, got ${codeName(err.code)}: ${err.details}`);
  if (message) assert.match(err.details, message);
  assert.doesNotMatch(err.details, /\n\s+at /, "a reply must not carry a stack trace");
  return err;
}

/** Is `target` the mount point of some mount right now? */
export async function isMounted(target: string): Promise<boolean> {
  return (await readMountInfo()).some((m) => m.mountPoint === target);
}

/** The mounts at `places` now, each as "mount point, mount ID, device, root": equal lists are the very same mounts. */
export function mountsAt(...places: string[]): string[] {
  return readMountInfo()
    .filter((m) => places.includes(m.mountPoint))
    .map((m) => `${m.mountPoint} ${m.id} ${m.device} ${m.root}`);
}
