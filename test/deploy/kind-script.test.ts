// deploy/kind/deploy.sh parses (bash -n) and is clean under shellcheck;
// the kind cluster config has one control plane and two workers, each
// sharing the directory the kind overlay uses as its shared backend.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { at, isObject, list, ofKind, str, type Json } from "./lib/objects";
import { render } from "./lib/render";
import { REPO } from "./lib/targets";

const SCRIPT = path.join(REPO, "deploy/kind/deploy.sh");

describe("deploy: the kind script and cluster config", () => {
  it("deploy.sh passes bash -n", () => {
    const r = spawnSync("bash", ["-n", SCRIPT], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
  });

  it("deploy.sh is clean under shellcheck", function () {
    const r = spawnSync("shellcheck", ["--severity=style", SCRIPT], { encoding: "utf8" });
    if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
      console.log("      shellcheck is not installed (apt-get install shellcheck): skipped here; CI installs it");
      this.skip();
    }
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it("cluster.yaml: one control plane, two workers, all sharing the overlay's share directory", () => {
    const cluster = parse(readFileSync(path.join(REPO, "deploy/kind/cluster.yaml"), "utf8")) as Json;
    assert.ok(isObject(cluster));
    assert.equal(cluster.kind, "Cluster");
    assert.equal(cluster.apiVersion, "kind.x-k8s.io/v1alpha4");
    const nodes = list(cluster.nodes).filter(isObject);
    assert.deepEqual(nodes.map((n) => n.role), ["control-plane", "worker", "worker"]);
    const nfs = ofKind(render(path.join(REPO, "deploy/kind")), "StorageClass").find((sc) => sc.metadata.name === "csi-lab-nfs");
    const share = str(at(nfs, "parameters", "share"));
    assert.ok(share, "the kind overlay gives csi-lab-nfs a share");
    for (const n of nodes) {
      const mounts = list(n.extraMounts).filter(isObject);
      assert.ok(mounts.some((m) => m.containerPath === share), `node ${String(n.role)} does not mount ${share}`);
      assert.match(String(n.image), /^kindest\/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$/, "node images are pinned by digest");
    }
    const script = readFileSync(SCRIPT, "utf8");
    for (const m of nodes.flatMap((n) => list(n.extraMounts).filter(isObject))) {
      assert.ok(script.includes(`SHARE=${String(m.hostPath)}`), `deploy.sh does not create ${String(m.hostPath)}`);
    }
  });
});
