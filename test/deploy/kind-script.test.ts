// deploy/kind/deploy.sh parses (bash -n) and is clean under shellcheck;
// the kind cluster config has one control plane and two workers, each
// sharing the directory the kind overlay uses as its shared backend; and,
// run against stand-in tools (lib/fake-tools.ts), the script prepares
// csi-sanity's directories, converges when run twice and reports each
// example once.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { argsOf, at, containersOf, isObject, list, ofKind, str, type Json } from "./lib/objects";
import { FAKE_TOOLS, runWithFakes, summaryRows } from "./lib/fake-tools";
import { render } from "./lib/render";
import { REPO } from "./lib/targets";
import { imageName, workloadsOf } from "./lib/workloads";

const SCRIPT = path.join(REPO, "deploy/kind/deploy.sh");
const E2E = path.join(REPO, "deploy/cluster/e2e.sh");

describe("deploy: the kind script and cluster config", () => {
  it("deploy.sh, e2e.sh and the files e2e.sh sources pass bash -n", () => {
    const lib = path.join(REPO, "deploy/cluster/lib");
    for (const f of [SCRIPT, E2E, ...["common.sh", "examples.sh", "checks.sh", "sanity.sh"].map((x) => path.join(lib, x))]) {
      const r = spawnSync("bash", ["-n", f], { encoding: "utf8" });
      assert.equal(r.status, 0, `${f}: ${r.stderr}`);
    }
  });

  it("deploy.sh, e2e.sh (with what it sources) and the stand-in tools its tests use are clean under shellcheck", function () {
    const fakes = ["kubectl", "kind", "docker", "csi-sanity"].map((t) => path.join(FAKE_TOOLS, t));
    const r = spawnSync("shellcheck", ["--severity=style", "--external-sources", SCRIPT, E2E, ...fakes], { encoding: "utf8" });
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

describe("deploy: deploy.sh against stand-in tools", () => {
  const env = { SKIP_BUILD: "1", EXAMPLES: "monitoring pvc-pod" };

  it("csi-sanity's staging and target directories have their parents made first, inside the kubelet directory", () => {
    const run = runWithFakes(SCRIPT, [], env);
    assert.equal(run.status, 0, run.output);
    const at = run.log.findIndex((l) => /csi-sanity\s.*--csi\.stagingdir=/.test(l));
    assert.ok(at >= 0, `csi-sanity was not run:\n${run.log.join("\n")}`);
    const flag = (name: string) => new RegExp(`--csi\\.${name}=(\\S+)`).exec(run.log[at]!)?.[1];
    for (const dir of [flag("stagingdir"), flag("mountdir")]) {
      assert.ok(dir, run.log[at]);
      const parent = path.posix.dirname(dir);
      assert.ok(parent.startsWith("/var/lib/kubelet/"), `${dir}: the driver accepts staging and target paths only inside the kubelet directory`);
      const made = run.log.slice(0, at).some((l) => /\bmkdir -p\b/.test(l) && l.split(/\s+/).includes(parent));
      assert.ok(made, `nothing made ${parent} before csi-sanity ran (csi-sanity makes ${path.posix.basename(dir)} with a plain mkdir):\n${run.log.join("\n")}`);
    }
  });

  it("a second run on the same cluster applies exactly what the first applied, and patches nothing", () => {
    const applies = (log: string[]) => log.filter((l) => /^kubectl .*\bapply\b/.test(l));
    const first = runWithFakes(SCRIPT, [], env);
    const second = runWithFakes(SCRIPT, [], env);
    assert.equal(first.status, 0, first.output);
    assert.equal(second.status, 0, second.output);
    for (const run of [first, second]) {
      const patches = run.log.filter((l) => /^kubectl (.* )?(patch|edit|set|annotate|label)\b/.test(l));
      assert.deepEqual(patches, [], "an imperative change conflicts with the next server-side apply of the same object");
    }
    assert.deepEqual(applies(second.log), applies(first.log));
  });

  it("--existing-cluster runs deploy/cluster/e2e.sh with the rest of the arguments, without kind or docker", () => {
    const run = runWithFakes(SCRIPT, ["--existing-cluster", "--help"]);
    assert.equal(run.status, 0, run.output);
    assert.match(run.output, /deploy\/cluster\/e2e\.sh \[--context NAME\]/);
    assert.deepEqual(run.log, []);
  });

  it("a skipped example is listed as skipped, and only as skipped", () => {
    const run = runWithFakes(SCRIPT, [], env);
    assert.equal(run.status, 0, run.output);
    const rows = summaryRows(run.output);
    assert.deepEqual(
      rows.filter(([, name]) => name === "monitoring"),
      [["skipped", "monitoring"]],
      `the prometheus-operator CRDs are absent, so monitoring is skipped:\n${run.output}`,
    );
    assert.deepEqual(rows.filter(([, name]) => name === "pvc-pod"), [["ok", "pvc-pod"]]);
  });
});

describe("deploy: the snapshot-controller kustomization", () => {
  const DIR = path.join(REPO, "deploy/snapshot-controller");
  const kustomization = parse(readFileSync(path.join(DIR, "kustomization.yaml"), "utf8")) as Json;

  it("takes the CRDs and the controller from the release of the csi-snapshotter sidecar", () => {
    const sidecar = workloadsOf(render(path.join(REPO, "deploy/kubernetes")))
      .flatMap((w) => w.containers)
      .find((c) => imageName(c.image) === "csi-snapshotter");
    const tag = sidecar?.image.split(":").pop();
    assert.ok(tag, "components/snapshots runs csi-snapshotter");
    const resources = list(at(kustomization, "resources")).map(String);
    assert.deepEqual(resources, [
      `https://github.com/kubernetes-csi/external-snapshotter/client/config/crd?ref=${tag}`,
      `https://github.com/kubernetes-csi/external-snapshotter/deploy/kubernetes/snapshot-controller?ref=${tag}`,
    ]);
  });

  it("its patch adds --enable-distributed-snapshotting to the controller and keeps its other arguments", () => {
    // The remote base cannot be fetched here: apply the same patch to a Deployment of the same shape.
    const dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-snapctl-"));
    try {
      const patch = list(at(kustomization, "patches")).filter(isObject)[0];
      assert.ok(patch && typeof patch.path === "string");
      copyFileSync(path.join(DIR, patch.path), path.join(dir, patch.path));
      const deployment = {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "snapshot-controller", namespace: "kube-system" },
        spec: {
          selector: { matchLabels: { app: "snapshot-controller" } },
          template: {
            metadata: { labels: { app: "snapshot-controller" } },
            spec: { containers: [{ name: "snapshot-controller", image: "snapshot-controller:test", args: ["--v=5", "--leader-election=true"] }] },
          },
        },
      };
      writeFileSync(path.join(dir, "deployment.yaml"), JSON.stringify(deployment));
      writeFileSync(path.join(dir, "kustomization.yaml"), JSON.stringify({ resources: ["deployment.yaml"], patches: [patch] }));
      const [rendered] = render(dir);
      assert.deepEqual(argsOf(containersOf(rendered!)[0]!), ["--v=5", "--leader-election=true", "--enable-distributed-snapshotting"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
