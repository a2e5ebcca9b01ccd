/**
 * The driver holds V8's young generation at the size start-up left it
 * (src/server/young-generation.ts). Checked in a child process, so this
 * test process's own heap is not changed: the child churns through many
 * short-lived objects of which some survive each scavenge — what makes V8
 * grow its young generation — and reports the size before and after.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as path from "node:path";

const MODULE = path.resolve(__dirname, "../../src/server/young-generation.js");

function churn(hold: boolean): { before: number; after: number } {
  const script = `
    const v8 = require("node:v8");
    const size = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size;
    const churn = (n) => {
      let keep = [];
      for (let i = 0; i < n; i++) {
        const o = { a: i, b: "x" + i, c: [i, i] };
        if (i % 100 === 0) keep.push(o);
        if (keep.length > 20000) keep = [];
      }
    };
    churn(2e5); // start-up: both semi-spaces in use
    const before = ${hold ? `require(${JSON.stringify(MODULE)}).holdYoungGeneration()` : "size()"};
    churn(3e6);
    process.stdout.write(JSON.stringify({ before, after: size() }));`;
  const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { before: number; after: number };
}

describe("young generation", () => {
  it("grows under churn when nothing holds it (the load the hold is for)", () => {
    const { before, after } = churn(false);
    assert.ok(after > before, `new space ${before} → ${after} bytes`);
  });

  it("keeps the size it had when it was held", () => {
    const { before, after } = churn(true);
    assert.ok(before > 0);
    assert.equal(after, before, `new space ${before} → ${after} bytes`);
  });
});
