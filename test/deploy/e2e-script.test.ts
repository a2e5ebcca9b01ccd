// deploy/cluster/e2e.sh, offline: its arguments, the one-line skip when no
// cluster answers, and whole runs against the stand-in kubectl
// (lib/fake-tools.ts) — a row per example and check, a non-zero exit when
// a check fails, the same applies on a second run. What it does on a real
// cluster is not run here (docs/deploy.md, "Running against any cluster").
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { runWithFakes, summaryRows } from "./lib/fake-tools";
import { examples, REPO } from "./lib/targets";

const E2E = path.join(REPO, "deploy/cluster/e2e.sh");

describe("deploy: e2e.sh (any cluster), offline", () => {
  it("--help prints the header's usage and exits 0", () => {
    const run = runWithFakes(E2E, ["--help"]);
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, /deploy\/cluster\/e2e\.sh \[--context NAME\]/);
    assert.deepEqual(run.log, [], "asks nothing of the cluster");
  });

  for (const [args, why] of [
    [["--frobnicate"], /unknown argument: --frobnicate/],
    [["--examples", "pvc-pod no-such-example"], /no example named no-such-example/],
    [["--timeout", "soon"], /--timeout soon: a duration/],
    [["--kustomization", "/nonexistent"], /no kustomization\.yaml/],
    [["--context"], /--context needs a value/],
    [["--examples", ""], /--examples needs a value/],
  ] as const) {
    it(`refuses ${args.join(" ")} with one line and status 2, before touching a cluster`, () => {
      const run = runWithFakes(E2E, [...args]);
      assert.equal(run.status, 2, run.output);
      assert.match(run.output, why);
      assert.deepEqual(run.log, []);
    });
  }

  it("without a reachable cluster: skipped, one line, status 0 (REQUIRE_CLUSTER=1: status 1)", () => {
    const run = runWithFakes(E2E, [], { FAKE_CLUSTER: "down" });
    assert.equal(run.status, 0, run.output);
    const lines = run.output.trim().split("\n");
    assert.equal(lines.length, 1, run.output);
    assert.match(lines[0]!, /^e2e\.sh: skipped: no reachable cluster \(The connection to the server .* was refused/);
    assert.ok(!run.log.some((l) => / apply /.test(l)), "applies nothing");
    const strict = runWithFakes(E2E, [], { FAKE_CLUSTER: "down", REQUIRE_CLUSTER: "1" });
    assert.equal(strict.status, 1, strict.output);
  });

  it("a whole run: one row per example and check, csi-sanity copied into the node plugin, status 0", function () {
    this.timeout(120_000);
    const run = runWithFakes(E2E, [], { FAKE_CRDS: "volumesnapshots.snapshot.storage.k8s.io" });
    assert.equal(run.status, 0, run.output);
    const rows = summaryRows(run.output);
    const names = rows.map(([, name]) => name);
    assert.equal(new Set(names).size, names.length, "each name has one row");
    for (const ex of examples()) assert.ok(names.includes(ex.name), `a row for example ${ex.name}`);
    for (const check of ["expansion:df-in-pod", "restore:data", "shared-snapshot:data", "modify-volume:result", "rolling-update:rwo", "metrics:node-plugin", "node-plugin-restart", "reclaim-delete:hello-data", "reclaim-retain:origin-data", "reclaim-retain:lifecycle-data", "csi-sanity"]) {
      assert.ok(names.includes(check), `a row for ${check}:\n${run.output}`);
    }
    assert.deepEqual(rows.filter(([s]) => s === "FAILED"), []);
    assert.deepEqual(rows.filter(([s]) => s === "skipped"), [["skipped", "monitoring"]]);
    assert.ok(run.log.some((l) => / -n csi-lab exec -i csi-lab-node-\d+ -c csi-lab -- sh -c cat > \/tmp\/csi-sanity/.test(l)), "csi-sanity is copied into the node plugin");
  });

  it("a check that fails is a FAILED row and a non-zero exit", function () {
    this.timeout(120_000);
    const run = runWithFakes(E2E, ["--examples", "expansion"], { FAKE_DF_KIB: "1031080" });
    assert.equal(run.status, 1, run.output);
    assert.deepEqual(
      summaryRows(run.output).filter(([s]) => s === "FAILED"),
      [["FAILED", "expansion:df-in-pod"]],
    );
  });

  it("a second run applies exactly what the first applied", function () {
    this.timeout(120_000);
    const applies = (log: string[]) => log.filter((l) => /\bapply\b/.test(l));
    const first = runWithFakes(E2E, ["--examples", "pvc-pod static-pv"]);
    const second = runWithFakes(E2E, ["--examples", "pvc-pod static-pv"]);
    assert.equal(first.status, 0, first.output);
    assert.deepEqual(applies(second.log), applies(first.log));
  });
});
