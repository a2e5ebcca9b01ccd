/**
 * The replay the lab starts, in a process of its own.
 *
 *   unshare --mount --propagation private -- node replay-child.js EXAMPLE SCRATCH
 *
 * The replay makes real mounts: shared mounts standing for the node's
 * kubelet directory, the node plugin's staging and publish mounts, loop
 * devices. The lab runs it behind `unshare` in a private mount namespace, so
 * none of those mounts reaches the machine's own mount table, and with
 * every path — the node's directories, the kubelet directory, the driver's
 * root and socket — inside SCRATCH, a fresh directory the lab removes
 * afterwards; never the host's /var/lib/kubelet. The replay engine is the
 * one the tests use (src/replay): the driver as the manifests run it, the
 * calls the sidecars and the kubelet make, the checks a user relies on.
 *
 * It writes one JSON line per event on stdout (see protocol.ts,
 * ReplayMessage) and ends with "done" or "error". SIGTERM stops the replay:
 * the drivers are stopped, their mounts undone, their loop devices detached,
 * and SCRATCH, then empty, removed. The lab sends that SIGTERM when the page
 * goes or the lab stops; the kernel sends it when the lab ends any other way
 * (killed with SIGKILL, it could send nothing, and would remove nothing:
 * src/server/parent-death.ts), so a replay never outlives its lab.
 */
import { mkdirSync, readlinkSync, rmdirSync } from "node:fs";
import * as path from "node:path";
import { PROTO_DIR } from "../rpc-demo/codecs/schema";
import { deploymentFrom, discover, exampleScenario, freePort, loadExample, plan, render, ReplayHost, run, type ReplayEvent } from "../replay";
import { stopWithParent } from "../server/parent-death";
import type { ReplayMessage } from "./protocol";

const REPO = path.join(PROTO_DIR, "..");
const NODE_NAME = "node-1";

function emit(m: ReplayMessage): void {
  process.stdout.write(JSON.stringify(m) + "\n");
}

/** SCRATCH, once the replay host has removed what it laid out there: only empty directories go (never a recursive removal). */
function removeScratch(scratch: string): void {
  for (const dir of [path.join(scratch, "node"), scratch]) {
    try {
      rmdirSync(dir);
    } catch {
      // gone already, or not empty: the lab removes what is left once this process has exited
    }
  }
}

/** The engine's event, as the page reads it (the plan's items pared down to what it draws). */
export function toMessage(e: ReplayEvent): ReplayMessage {
  const call = (c: { method: string; service: string; process: string; caller: string; why: string }) => ({ method: c.method, service: c.service, process: c.process, caller: c.caller, why: c.why });
  switch (e.type) {
    case "step":
      return { type: "step", step: { n: e.step.n, change: e.step.change, ...(e.step.file ? { file: e.step.file } : {}), notes: e.step.notes } };
    case "call":
      return { type: "call", step: e.step, call: call(e.call), request: e.request };
    case "reply":
      return { type: "reply", step: e.step, call: call(e.call), code: e.code, ...(e.message ? { message: e.message } : {}), ...(e.reply !== undefined ? { reply: e.reply } : {}), ms: e.ms, ok: e.ok };
    case "skipped":
      return { type: "skipped", step: e.step, reason: e.reason };
    case "restart":
      return { type: "restart", step: e.step, process: e.process, ms: e.ms };
    case "check":
    case "record":
    case "cleanup":
    case "device":
    case "done":
      return e;
  }
}

async function main(example: string, scratch: string): Promise<void> {
  // Refuse to run where a mount would reach the machine: the lab starts this behind unshare.
  const lab = process.env["CSI_LAB_LAB_MNT_NS"];
  if (!lab || lab === readlinkSync("/proc/self/ns/mnt")) {
    throw new Error("the replay runs only in the private mount namespace the lab makes for it (unshare --mount --propagation private)");
  }
  // A lab that is gone reads nothing: what is written to it goes nowhere (EPIPE), and the clean-up must go on.
  for (const out of [process.stdout, process.stderr]) out.on("error", () => undefined);
  // Stopping waits for a start under way (one that fails has undone itself), then undoes the replay.
  let starting: Promise<ReplayHost> | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await (await starting?.catch(() => undefined))?.stop();
      removeScratch(scratch);
    })());
  // Every SIGTERM, not just the first, waits for the one stop: the lab may send one as the page goes and
  // the kernel another as the lab ends, and one for each of the lab's threads it hands this process to
  // as they end (the kernel's "parent" is the thread that started it).
  process.on("SIGTERM", () => void stop().finally(() => process.exit(143)));
  // After the handler: a lab already gone means a SIGTERM at once.
  stopWithParent("the replay");
  try {
    const deployment = deploymentFrom(render(path.join(REPO, "deploy/kind")), { nodeName: NODE_NAME });
    const hostDir = path.join(scratch, "node");
    mkdirSync(hostDir, { recursive: true });
    const ports = { node: await freePort(), controller: await freePort() };
    if (stopping) return; // stopped meanwhile: start nothing
    starting = ReplayHost.start({ deployment, hostDir, bin: path.join(REPO, "bin/csi-lab.js"), metricsPorts: ports });
    const host = await starting;
    emit({ type: "started", example, scratch });
    const onEvent = (e: ReplayEvent) => emit(toMessage(e));
    // Step 0 is a run of its own: its "done" is not the replay's.
    const facts = await discover(deployment, NODE_NAME, host, { onEvent: (e) => e.type !== "done" && onEvent(e) });
    const steps = plan(exampleScenario(loadExample(path.join(REPO, "deploy/examples", example))), deployment, facts, {
      kubeletDir: host.kubeletDir,
      driverPath: (p) => host.containerPath("node", p),
    });
    await run(steps, host, { onEvent });
  } finally {
    await stop();
  }
}

if (require.main === module) {
  const [example, scratch] = process.argv.slice(2);
  main(example!, scratch!).then(
    () => process.exit(0),
    (err: unknown) => {
      emit({ type: "error", message: err instanceof Error ? err.message : String(err) });
      process.exit(1);
    },
  );
}
