// SIGTERM: in-flight calls finish, the socket is removed, the exit is clean.
// A driver whose parent process ends (a shell, or npm, sent SIGTERM or
// killed) shuts down the same way instead of serving on, orphaned.
// A second driver on a live socket refuses to start instead of stealing it.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, promises as fsp, readdirSync, readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Code, DIR_VOLUMES, DriverProcess, destroyDriver, expectCode, mountCapability, startDriver, uniqueName } from "./harness";
import { running } from "../rpc-demo/started-by-shell";

const REPO = path.resolve(__dirname, "../../..");
const BIN = path.join(REPO, "bin/csi-lab.js");

/** A volume with enough files that deleting it takes a noticeable moment. */
async function bigVolume(d: DriverProcess): Promise<string> {
  const id = (await d.client.controller.createVolume({ name: uniqueName("big"), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
  const data = path.join(d.root, "data", id);
  for (let dir = 0; dir < 40; dir++) {
    await fsp.mkdir(path.join(data, `d${dir}`));
    await Promise.all(Array.from({ length: 500 }, (_, f) => fsp.writeFile(path.join(data, `d${dir}`, `f${f}`), "")));
  }
  return id;
}

async function waitForLog(d: DriverProcess, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (d.logs.some((l) => pattern.test(l))) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`no log line matching ${pattern}`);
}


/** The node process whose command line is `csi-lab driver … <socket> …`. */
function driverPid(socket: string): number | undefined {
  for (const name of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (path.basename(argv[0]!) === "node" && argv.some((a) => a.endsWith("bin/csi-lab.js")) && argv.some((a) => a.includes(socket))) return Number(name);
  }
  return undefined;
}

async function until<T>(what: string, probe: () => T | undefined, ms = 10_000): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
  }
  throw new Error(`gave up waiting (${ms} ms) for ${what}`);
}

/**
 * A driver started the way a person starts one — `command` runs it as its
 * child (through a shell, or npm) — with its log lines collected from the
 * stderr it inherits.
 */
class IndirectDriver {
  readonly logs: string[] = [];
  readonly socket: string;
  proc!: ChildProcess;
  pid!: number;
  constructor(readonly dir: string) {
    this.socket = path.join(dir, "csi.sock");
  }
  get args(): string[] {
    return ["driver", "--endpoint", `unix://${this.socket}`, "--root", path.join(this.dir, "root"), "--kubelet-dir", path.join(this.dir, "kubelet")];
  }
  async start(command: string, args: string[]): Promise<void> {
    this.proc = spawn(command, args, { cwd: REPO, stdio: ["ignore", "ignore", "pipe"] });
    let buf = "";
    this.proc.stderr!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      const lines = buf.split("\n");
      buf = lines.pop()!;
      this.logs.push(...lines);
    });
    await until(`the driver's "ready" line:\n${this.logs.join("\n")}`, () => this.logs.some((l) => l.includes('"msg":"ready"')), 60_000);
    this.pid = await until("the driver's pid", () => driverPid(this.socket));
  }
  /** Whatever the test found, no driver is left running. */
  async cleanup(): Promise<void> {
    if (this.pid !== undefined && running(this.pid)) process.kill(this.pid, "SIGKILL");
    if (this.proc?.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
  /** After its parent ended: the driver said why, removed its socket and exited. */
  async expectCleanStop(parentPid: number): Promise<void> {
    await until(`the driver (pid ${this.pid}) to exit; it logged:\n${this.logs.join("\n")}`, () => !running(this.pid), 10_000);
    const lines = this.logs.flatMap((l) => (l.startsWith("{") ? [JSON.parse(l) as Record<string, unknown>] : []));
    const signal = lines.find((l) => l.msg === "signal received");
    assert.deepEqual(signal && { signal: signal.signal, cause: signal.cause }, { signal: "SIGTERM", cause: `its parent process (pid ${parentPid}) ended` });
    assert.ok(lines.some((l) => l.msg === "stopped"), "the driver logs that it stopped");
    assert.equal(existsSync(this.socket), false, "socket removed");
  }
}

describe("Shutdown", () => {
  let d: DriverProcess | undefined;
  afterEach(async () => destroyDriver(d));

  it("SIGTERM lets an in-flight call finish, removes the socket and exits 0", async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    const id = await bigVolume(d);
    const inflight = d.client.controller.deleteVolume({ volumeId: id });
    await waitForLog(d, /"msg":"request","rpc":"DeleteVolume"/);
    d.proc.kill("SIGTERM");
    await inflight; // completes successfully despite the signal
    assert.equal(await d.exit, 0);
    assert.equal(existsSync(d.socket), false, "socket removed");
    assert.equal(existsSync(path.join(d.root, "data", id)), false, "the delete really happened");
    const order = d.jsonLogs().map((l) => `${l.msg}${l.rpc ? `:${l.rpc}` : ""}`);
    assert.ok(order.indexOf("shutting down") < order.indexOf("rpc:DeleteVolume"), order.join(" "));
  });

  it("a second call on a volume that is busy answers ABORTED", async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    const id = await bigVolume(d);
    const first = d.client.controller.deleteVolume({ volumeId: id });
    await waitForLog(d, /"msg":"request","rpc":"DeleteVolume"/);
    await expectCode(d.client.controller.deleteVolume({ volumeId: id }), Code.ABORTED, /in progress/);
    await first;
  });

  it("a second driver on a live socket refuses to start", async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    // Its own root (the same one would wait for the first driver's: one-driver-per-root.test.ts), the same socket.
    const dir = d.dir;
    const second = new (class extends DriverProcess {
      override get root(): string {
        return path.join(dir, "second-root");
      }
    })(d.dir, {});
    await assert.rejects(second.start(), /another process is serving/);
    assert.equal((await d.client.identity.probe({})).ready, true);
  });

  it("a socket path occupied by a regular file is not deleted", async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    await d.stop();
    await fsp.writeFile(d.socket, "not a socket");
    await assert.rejects(d.start(), /not a socket/);
    assert.equal(await fsp.readFile(d.socket, "utf8"), "not a socket");
  });

  describe("when the process that started the driver ends", () => {
    let ind: IndirectDriver | undefined;
    afterEach(async () => ind?.cleanup());
    const scratch = async () => {
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-parent-"));
      await fsp.mkdir(path.join(dir, "kubelet"));
      return dir;
    };

    it("the shell that ran `csi-lab driver &` is killed: the driver logs why, removes its socket and exits", async () => {
      ind = new IndirectDriver(await scratch());
      // The shell stays the driver's parent: it waits for it, as an interactive shell would.
      await ind.start("sh", ["-c", '"$0" "$@" & wait', process.execPath, BIN, ...ind.args]);
      const shell = ind.proc.pid!;
      assert.equal(Number(readFileSync(`/proc/${ind.pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]), shell, "the shell is the driver's parent");
      ind.proc.kill("SIGKILL"); // nothing is forwarded: only the kernel can tell the driver
      await ind.expectCleanStop(shell);
    });

    it("npm, which ran the driver through a shell (`npm run driver`), is sent SIGTERM: the driver stops cleanly too", async function () {
      this.timeout(60_000);
      ind = new IndirectDriver(await scratch());
      await ind.start("npm", ["run", "--silent", "driver", "--", ...ind.args.slice(1)]);
      // npm → sh -c "node bin/csi-lab.js driver …" → the driver.
      const shell = Number(readFileSync(`/proc/${ind.pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      ind.proc.kill("SIGTERM");
      await ind.expectCleanStop(shell);
    });

    it("as PID 1 of its PID namespace (a container's main process), it leaves stopping to the runtime", async () => {
      ind = new IndirectDriver(await scratch());
      // unshare plays the container runtime: the driver is PID 1 inside, its parent outside.
      await ind.start("unshare", ["--pid", "--fork", "--", process.execPath, BIN, ...ind.args, "--log-level", "debug"]);
      const watch = ind.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === "parent process");
      assert.deepEqual(watch, { ...watch, watched: false, why: "the driver is PID 1 (a container's main process)" });
      ind.proc.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(running(ind.pid), "the driver serves on");
      assert.ok(existsSync(ind.socket));
      process.kill(ind.pid, "SIGTERM"); // as the runtime stops a container
      await until("the driver to exit", () => !running(ind!.pid));
      assert.ok(ind.logs.some((l) => l.includes('"msg":"signal received","signal":"SIGTERM"}')), ind.logs.join("\n"));
      assert.equal(existsSync(ind.socket), false, "socket removed");
    });
  });
});
