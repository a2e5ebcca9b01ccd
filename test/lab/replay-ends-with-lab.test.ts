// A replay the lab started ends with the lab, however the lab ends. Killed
// with SIGKILL, the lab cannot stop its replay child or remove the scratch
// directory: the child learns that its parent is gone from the kernel
// (src/server/parent-death.ts), stops the drivers it started, undoes their
// mounts and removes the scratch directory itself.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as http from "node:http";
import { parentOf, running, StartedCommand, throughShell, until } from "../rpc-demo/started-by-shell";
import { describeContained } from "../replay/replay-harness";
import { readSse, type SseReader } from "./sse";

const OPEN = /^csi-lab lab: open (http:\/\/127\.0\.0\.1:\d+\/) /m;

function getText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}

const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");

/** Every process below `root`, at this moment. */
function descendants(root: number): number[] {
  const pids = readdirSync("/proc").filter((n) => /^\d+$/.test(n)).map(Number);
  const found: number[] = [];
  for (let queue = [root]; queue.length; ) {
    const parent = queue.shift()!;
    for (const pid of pids) {
      try {
        if (parentOf(pid) === parent) (found.push(pid), queue.push(pid));
      } catch {
        // gone meanwhile
      }
    }
  }
  return found;
}

// It makes real mounts: only inside test/sandbox/throwaway-root, as the replay tests.
describeContained("a lab's replay, when the lab is killed with SIGKILL", function () {
  this.timeout(120_000);
  let lab: StartedCommand | undefined;
  let events: SseReader | undefined;
  const left: number[] = [];
  afterEach(() => {
    events?.close();
    lab?.cleanup();
    for (const pid of left) if (running(pid)) process.kill(pid, "SIGKILL");
  });

  it("the replay child stops its drivers, removes the scratch directory and exits", async () => {
    lab = await StartedCommand.start(throughShell(["lab", "--port", "0"]), OPEN);
    const url = OPEN.exec(lab.stdout)![1]!;
    const token = /<meta name="lab-token" content="([0-9a-f]+)">/.exec(await getText(url))![1]!;
    events = await readSse(`${url}api/replay?example=rolling-update&token=${token}`);
    // Under way: the drivers run (the first call of step 0 has been made).
    const seen = await events.until((es) => es.some((e) => (e.data as { type: string }).type === "call"), 60_000);
    const scratch = (seen.find((e) => (e.data as { type: string }).type === "started")!.data as { scratch: string }).scratch;
    const child = await until("the replay child", () => descendants(lab!.pid).find((pid) => cmdline(pid).includes("replay-child.js")));
    const below = descendants(child);
    left.push(child, ...below);
    assert.ok(below.some((pid) => cmdline(pid).includes(" driver ")), `the replay's drivers run: ${below.map(cmdline).join("\n")}`);
    assert.ok(existsSync(scratch), scratch);

    process.kill(lab.pid, "SIGKILL"); // the lab gets no chance to stop anything
    await until(`the replay child (pid ${child}) to exit`, () => !running(child), 60_000);
    assert.deepEqual(below.filter(running).map((pid) => `${pid} ${cmdline(pid)}`), [], "nothing the replay started still runs");
    assert.equal(existsSync(scratch), false, `the scratch directory ${scratch} is removed`);
  });
});
