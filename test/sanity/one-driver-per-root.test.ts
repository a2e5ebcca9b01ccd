// One driver per root. A second driver started on a root a live driver holds (a DaemonSet pod
// replaced while the old one finishes its calls, a driver started twice by mistake) must not
// sweep or write anything there: its start-up sweep would take the live driver's half-made
// volumes for a crash's leftovers. It waits for the first to exit — however it exits, kill -9
// included — and then starts; or, if the first outlives --root-lock-timeout, it exits naming
// the root and the driver that holds it.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { destroyDriver, startDriver, type DriverProcess } from "./harness";

const BIN = path.resolve(__dirname, "../../../bin/csi-lab.js");

/** A second driver on `d`'s root, serving a socket of its own; its log (stderr) collects in `log`. */
function secondDriver(d: DriverProcess, extraArgs: string[] = []): { proc: ChildProcess; log: () => string; exit: Promise<number | null> } {
  const args = ["driver", "--endpoint", `unix://${d.scratch("second.sock")}`, "--root", d.root, "--kubelet-dir", d.kubeletDir, "--node-id", d.nodeId];
  const proc = spawn(process.execPath, [BIN, ...args, ...extraArgs], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr!.on("data", (c: Buffer) => (log += c.toString()));
  const exit = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  return { proc, log: () => log, exit };
}

/** Wait (without a deadline of our own: mocha's) until `check` holds. */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 50));
}

/** Every path under `root` with its type, size and modification time: what a sweep or a write would change. */
function snapshotOf(root: string): string {
  return spawnSync("find", [root, "-printf", "%p %y %s %T@\n"], { encoding: "utf8" }).stdout.split("\n").sort().join("\n");
}

describe("One driver per root", function () {
  this.timeout(60_000);
  let d: DriverProcess | undefined;
  let second: ReturnType<typeof secondDriver> | undefined;
  afterEach(async () => {
    if (second && second.proc.exitCode === null && second.proc.signalCode === null) second.proc.kill("SIGKILL");
    await second?.exit;
    second = undefined;
    await destroyDriver(d);
    d = undefined;
  });

  /** What a create of the first driver's looks like while it is under way: its volume's directory in .tmp, no record yet. */
  async function inProgressCreate(first: DriverProcess): Promise<string> {
    const staging = path.join(first.root, ".tmp", "hp-0123456789abcdef0123456789abcdef.abc123");
    await fsp.mkdir(staging);
    await fsp.writeFile(path.join(staging, "half-copied"), "x");
    return staging;
  }

  it("a second driver on a live driver's root sweeps and writes nothing while the first lives, and takes over when it is killed -9", async () => {
    d = await startDriver();
    const staging = await inProgressCreate(d);
    const before = snapshotOf(d.root);
    second = secondDriver(d);
    const s = second;
    await until(() => /waiting for it to exit|"msg":"ready"/.test(s.log()) || s.proc.exitCode !== null);
    assert.doesNotMatch(s.log(), /"msg":"ready"/, "the second driver started on a root the first still holds");
    assert.match(s.log(), new RegExp(`another driver holds the root.*"root":"${d.root}".*pid ${d.proc.pid} here`), "it says on whom it waits");
    assert.equal((s.log().match(/another driver holds the root/g) ?? []).length, 1, "it says so once");
    assert.equal(snapshotOf(d.root), before, "the second driver changed the root while the first held it");
    assert.equal((await d.client.identity.probe({})).ready, true, "the first driver still serves");

    d.proc.kill("SIGKILL");
    await d.exit;
    await until(() => /"msg":"ready"/.test(s.log()) || s.proc.exitCode !== null);
    assert.match(s.log(), /"msg":"ready"/, `the second driver did not take over: ${s.log()}`);
    await assert.rejects(fsp.access(staging), /ENOENT/, "once it holds the root, its sweep removes what the killed driver left");
  });

  it("a second driver that does not get the root within --root-lock-timeout exits non-zero, naming the root and its holder, having touched nothing", async () => {
    d = await startDriver();
    const staging = await inProgressCreate(d);
    const before = snapshotOf(d.root);
    second = secondDriver(d, ["--root-lock-timeout", "0.5"]);
    assert.equal(await second.exit, 1);
    const lastLine = second.log().trim().split("\n").pop()!;
    assert.match(lastLine, new RegExp(`^csi-lab driver: --root ${d.root} is in use by another driver \\(pid ${d.proc.pid} here.*within 0.5 s`));
    assert.equal(snapshotOf(d.root), before);
    await fsp.access(staging);
    assert.equal((await d.client.identity.probe({})).ready, true, "the first driver still serves");
  });

  it("a driver stopped cleanly lets the next one start at once, with no wait", async () => {
    d = await startDriver();
    await d.stop();
    second = secondDriver(d, ["--root-lock-timeout", "0"]);
    const s = second;
    await until(() => /"msg":"ready"/.test(s.log()) || s.proc.exitCode !== null);
    assert.match(s.log(), /"msg":"ready"/);
    assert.doesNotMatch(s.log(), /another driver holds the root/);
  });
});
