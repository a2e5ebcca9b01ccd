// package.json's engines say which Node.js the project runs on, README says
// the same, and every locked dependency agrees: `npm ci` warns of no
// EBADENGINE, neither on the oldest Node.js the engines allow nor on this one.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const REPO = path.resolve(__dirname, "../../..");
const pkg = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as { engines: { node: string } };

/** The oldest version `>=A.B[.C]` allows, as A.B.C. */
function floorOf(range: string): string {
  const m = /^>=\s*(\d+)\.(\d+)(?:\.(\d+))?$/.exec(range);
  assert.ok(m, `engines.node is ${JSON.stringify(range)}, expected the form >=MAJOR.MINOR`);
  return `${m[1]}.${m[2]}.${m[3] ?? 0}`;
}

/** What `npm ci` says about engines under Node.js `nodeVersion`, installing nothing. */
function npmCiDryRun(nodeVersion: string): { status: number | null; output: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-engines-"));
  try {
    for (const f of ["package.json", "package-lock.json"]) copyFileSync(path.join(REPO, f), path.join(dir, f));
    // The lock file holds every package's engines: no registry needed (--offline, an empty cache).
    const r = spawnSync(
      "npm",
      ["ci", "--dry-run", "--ignore-scripts", "--offline", "--no-audit", "--no-fund", "--cache", path.join(dir, "cache"), "--node-version", nodeVersion],
      { cwd: dir, encoding: "utf8", timeout: 60_000 },
    );
    return { status: r.status, output: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ""}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("Node.js engines", () => {
  it("README names the Node.js that package.json's engines allow", () => {
    const floor = floorOf(pkg.engines.node).replace(/\.0$/, "");
    assert.match(readFileSync(path.join(REPO, "README.md"), "utf8"), new RegExp(`Node\\.js ≥ ${floor.replace(".", "\\.")}\\b`));
  });

  for (const [which, version] of [
    ["the oldest Node.js the engines allow", floorOf(pkg.engines.node)],
    ["this Node.js", process.versions.node],
  ]) {
    it(`every locked dependency supports ${which} (${version}): npm ci warns of no EBADENGINE`, function () {
      this.timeout(60_000);
      const r = npmCiDryRun(version!);
      assert.equal(r.status, 0, r.output.slice(-2000));
      const wants = [...r.output.matchAll(/package: '([^']+)',\s*\n.*required: \{ node: '([^']+)' \}/g)].map((m) => `${m[1]} wants node ${m[2]}`);
      assert.deepEqual(wants, []);
      assert.deepEqual(r.output.split("\n").filter((l) => l.includes("EBADENGINE")), []);
    });
  }
});
