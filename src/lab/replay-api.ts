/**
 * The replay view's server side: which examples there are, and one replay
 * at a time, streamed to the page as Server-Sent Events.
 *
 * The replay itself runs in replay-child.ts, started behind
 * `unshare --mount --propagation private` with a scratch directory of its
 * own (under the system's temporary directory): the node's directories,
 * the kubelet directory, the drivers' roots and sockets all live there, and
 * the directory is removed once the child has exited (its mount namespace,
 * and every mount in it, gone with it). Closing the page stops the replay,
 * and so does the lab's end: the child removes the scratch directory itself
 * when the lab can no longer (killed with SIGKILL; see replay-child.ts).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import type * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { loadExamples } from "../replay";
import { PROTO_DIR } from "../rpc-demo/codecs/schema";
import type { ExampleInfo, ReplayMessage } from "./protocol";

const REPO = path.join(PROTO_DIR, "..");
const EXAMPLES = path.join(REPO, "deploy/examples");

export function examples(): ExampleInfo[] {
  return loadExamples(EXAMPLES).map((e) => {
    // What the example is about: the opening comment of its first file.
    const first = e.files[0] ? readFileSync(path.join(EXAMPLES, e.name, e.files[0].file), "utf8") : "";
    const lines: string[] = [];
    for (const l of first.split("\n")) {
      if (!l.startsWith("#")) break;
      lines.push(l.replace(/^#\s?/, ""));
    }
    return { name: e.name, files: e.files.map((f) => f.file), summary: lines.join(" ").trim() };
  });
}

/** Why a replay cannot start here, or undefined. */
export function replayUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "the replay makes real mounts: run `csi-lab lab` as root";
  return undefined;
}

let running: ChildProcess | undefined;

export function serveReplay(example: string, req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
  const send = (m: ReplayMessage) => res.write(`data: ${JSON.stringify(m)}\n\n`);
  const fail = (message: string) => {
    send({ type: "error", message });
    res.end();
  };
  if (!examples().some((e) => e.name === example)) return fail(`no example named ${JSON.stringify(example)} in deploy/examples`);
  const why = replayUnavailable();
  if (why) return fail(why);
  if (running) return fail("a replay is already running; wait for it to end");

  const scratch = mkdtempSync(path.join(os.tmpdir(), "csi-lab-lab-replay-"));
  const child = spawn("unshare", ["--mount", "--propagation", "private", "--", process.execPath, path.join(__dirname, "replay-child.js"), example, scratch], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, CSI_LAB_LAB_MNT_NS: readlinkSync("/proc/self/ns/mnt") },
  });
  running = child;
  let out = "";
  let err = "";
  let last: string | undefined;
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    for (let nl = out.indexOf("\n"); nl >= 0; nl = out.indexOf("\n")) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      if (!line.startsWith("{")) continue;
      // The last word waits for the clean-up: "done" on the page means the drivers are stopped and the scratch directory is gone.
      if (/^\{"type":"(done|error)"/.test(line)) last = line;
      else res.write(`data: ${line}\n\n`);
    }
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err = (err + chunk).slice(-4000)));
  child.once("exit", (code, signal) => {
    running = undefined;
    // The child's namespace, and its mounts, are gone: what is left of the scratch directory is plain files.
    rmSync(scratch, { recursive: true, force: true });
    if (res.writableEnded) return;
    if (last) res.write(`data: ${last}\n\n`);
    else send({ type: "error", message: `the replay stopped (${signal ?? `exit ${code}`})${err ? `: ${err.trim().split("\n").slice(-5).join(" / ")}` : ""}` });
    res.end();
  });
  child.once("error", (e) => {
    if (!res.writableEnded) fail(`cannot start the replay: ${e.message} (it needs unshare, from util-linux)`);
  });
  // The page went away: stop the replay (the child cleans up on SIGTERM).
  req.socket.once("close", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  });
}

/** Stop a running replay (the lab is shutting down) and wait for it. */
export async function stopReplay(): Promise<void> {
  const child = running;
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await gone;
}
