// What a clone carries: source, not the output of someone's run. A V8
// profiler log (`node --prof` writes isolate-0x…-v8.log in the current
// directory) was once committed at the root; logs and CPU profiles are
// now ignored, and none is tracked.
import { strict as assert } from "node:assert";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import * as path from "node:path";

const REPO = path.resolve(__dirname, "../../..");

function git(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync("git", ["-C", REPO, ...args], { encoding: "utf8" });
}

describe("Tracked files", () => {
  before(function () {
    // A git worktree keeps its repository outside the checkout, which the
    // throwaway root (npm test) does not show; a clone (CI) has it inside.
    const r = git("rev-parse", "--is-inside-work-tree");
    if (r.status !== 0 || r.stdout.trim() !== "true") {
      console.log(`      (skipped: git cannot see this checkout's repository here: ${(r.stderr || String(r.error)).trim().split("\n")[0]})`);
      this.skip();
    }
  });

  it("no log or CPU profile is tracked", () => {
    const tracked = git("ls-files", "-z").stdout.split("\0");
    assert.deepEqual(
      tracked.filter((f) => /\.(log|cpuprofile)$/.test(f)),
      [],
    );
  });

  it("profiler logs and CPU profiles are ignored wherever they are written", () => {
    const made = ["isolate-0x214a21a0-13268-v8.log", "CPU.20261126.101010.1234.0.001.cpuprofile", "bench/isolate-0x1-2-v8.log", "driver.log"];
    const r = git("check-ignore", "--no-index", ...made);
    assert.deepEqual(r.stdout.split("\n").filter((l) => l), made);
  });

  it("nothing tracked matches an ignore rule", () => {
    assert.equal(git("ls-files", "--cached", "--ignored", "--exclude-standard").stdout, "");
  });
});
