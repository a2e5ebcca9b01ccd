// The replay's plan, without a driver: each Kubernetes change becomes the
// calls the sidecars and the kubelet would make, routed as the manifests
// route them, at the paths the kubelet uses; placeholders stand for what
// only the driver knows, and a plan is plain, repeatable JSON (a UI shows
// it before anything runs).
import assert from "node:assert/strict";
import * as path from "node:path";
import { deploymentFrom } from "../../src/replay/deployment";
import { sha256 } from "../../src/replay/kubelet-paths";
import { plan, type DriverFacts } from "../../src/replay/plan";
import { exampleScenario, loadExample, loadExamples } from "../../src/replay/scenario";
import { resolve, type PlannedCall, type Step } from "../../src/replay/steps";
import { render } from "../deploy/lib/render";
import { REPO } from "../deploy/lib/targets";

const EXAMPLES = path.join(REPO, "deploy/examples");
const KUBELET = "/var/lib/kubelet";
const FACTS: DriverFacts = {
  nodeName: "node-1",
  nodeId: "node-1",
  topology: { "csi-lab.example.org/node": "node-1" },
  controllerCaps: ["CREATE_DELETE_VOLUME", "SINGLE_NODE_MULTI_WRITER", "EXPAND_VOLUME", "MODIFY_VOLUME"],
  nodeCaps: ["STAGE_UNSTAGE_VOLUME", "SINGLE_NODE_MULTI_WRITER", "VOLUME_MOUNT_GROUP", "EXPAND_VOLUME"],
};

const deployment = deploymentFrom(render(path.join(REPO, "deploy/kind")), { nodeName: "node-1" });
const calls = (steps: Step[]) => steps.flatMap((s) => s.items).filter((i): i is PlannedCall => i.type === "call");
const planOf = (name: string) => plan(exampleScenario(loadExample(path.join(EXAMPLES, name))), deployment, FACTS, { kubeletDir: KUBELET });

describe("Replay plan (no driver)", () => {
  it("reads the routes from the manifests: provisioner and snapshotter beside the node plugin, resizer beside the controller", () => {
    assert.deepEqual(deployment.routes, { "csi-provisioner": "node", "csi-snapshotter": "node", "csi-resizer": "controller", "csi-attacher": undefined });
    assert.ok(deployment.node.args.includes("--mode=all"));
    assert.ok(deployment.controller?.args.includes("--mode=controller"));
    assert.ok(deployment.node.args.includes("--node-id=node-1"), "$(NODE_ID) comes from spec.nodeName");
  });

  it("expansion: ControllerExpandVolume on the controller, then NodeExpandVolume on the node only if the controller asked for it, for the claim's allocated size", () => {
    const grow = calls(planOf("expansion")).filter((c) => c.method.includes("Expand"));
    assert.deepEqual(
      grow.map((c) => [c.method, c.process, c.caller]),
      [
        ["ControllerExpandVolume", "controller", "csi-resizer"],
        ["NodeExpandVolume", "node", "kubelet"],
        ["NodeExpandVolume", "node", "kubelet"],
      ],
    );
    assert.equal(grow[0]!.request.capacityRange && (grow[0]!.request.capacityRange as { requiredBytes: number }).requiredBytes, 2 * 2 ** 30);
    assert.match(String(grow[1]!.onlyIf), /^\$\{nodeExpansionRequired:pvc-/);
    // The kubelet asks for the claim's status.allocatedResources, the 2Gi csi-resizer asked for (not the PV's capacity, the controller's answer).
    for (const c of grow.slice(1)) assert.deepEqual(c.request.capacityRange, { requiredBytes: 2 * 2 ** 30, limitBytes: 0 });
  });

  it("a claim grown while no pod uses it: NodeExpandVolume right after the next read-write pod's NodePublishVolume, if the controller asked, once", () => {
    const claim = (storage: string) => ({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "grown" },
      spec: { storageClassName: "csi-lab-hostpath", accessModes: ["ReadWriteOnce"], resources: { requests: { storage } } },
    });
    const pod = (name: string, readOnly: boolean) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name },
      spec: { containers: [{ name: "app", image: "busybox:1.37.0" }], volumes: [{ name: "data", persistentVolumeClaim: { claimName: "grown", readOnly } }] },
    });
    const steps = plan(
      {
        name: "grow-unused",
        namespace: "ns",
        actions: [
          { type: "apply", objects: [claim("1Gi"), pod("first", false)] },
          { type: "delete", kind: "Pod", name: "first" },
          { type: "apply", objects: [claim("2Gi")] },
          { type: "apply", objects: [pod("reader", true)] },
          { type: "apply", objects: [pod("writer", false)] },
          { type: "apply", objects: [pod("third", false)] },
        ],
      },
      deployment,
      FACTS,
      { kubeletDir: KUBELET },
    );
    const stepOf = (change: string) => steps.find((s) => s.change === change)!;
    assert.deepEqual(calls([stepOf("update PersistentVolumeClaim ns/grown")]).map((c) => c.method), ["ControllerExpandVolume"], "no pod: nothing on the node yet");
    assert.deepEqual(calls([stepOf("create Pod ns/reader")]).map((c) => c.method), ["NodeStageVolume", "NodePublishVolume"], "a read-only mount is not expanded");
    const writer = calls([stepOf("create Pod ns/writer")]);
    assert.deepEqual(writer.map((c) => c.method).slice(0, 2), ["NodePublishVolume", "NodeExpandVolume"], "after mounting for the pod (the reader staged it)");
    const expand = writer[1]!;
    const pv = String(expand.onlyIf).slice("${nodeExpansionRequired:".length, -1);
    assert.equal(expand.onlyIf, `\${nodeExpansionRequired:${pv}}`, "only if ControllerExpandVolume answered node_expansion_required");
    assert.deepEqual(expand.request.capacityRange, { requiredBytes: 2 * 2 ** 30, limitBytes: 0 }, "for the claim's allocated size");
    assert.equal(expand.request.volumePath, writer[0]!.request.targetPath);
    assert.deepEqual(calls([stepOf("create Pod ns/third")]).map((c) => c.method), ["NodePublishVolume"], "the resize is finished: the next pod is not expanded");
  });

  it("the kubelet's paths: staging under plugins/kubernetes.io/csi/<driver>/<sha256 of the handle>, targets under pods/<uid>/volumes", () => {
    const steps = planOf("pvc-pod");
    const [stage, publish] = calls(steps).filter((c) => c.method === "NodeStageVolume" || c.method === "NodePublishVolume");
    const pv = String(calls(steps).find((c) => c.method === "CreateVolume")!.request.name);
    assert.equal(stage!.request.stagingTargetPath, `${KUBELET}/plugins/kubernetes.io/csi/csi-lab.example.org/\${volumeHash:${pv}}/globalmount`);
    assert.match(String(publish!.request.targetPath), new RegExp(`^${KUBELET}/pods/[0-9a-f-]{36}/volumes/kubernetes\\.io~csi/${pv}/mount$`));
    assert.deepEqual(publish!.mkdirBefore, [path.dirname(String(publish!.request.targetPath))], "the kubelet makes the parent; the driver makes `mount`");
    const learnt = new Map<string, import("../../src/replay/k8s-objects").Json>([
      [`volumeHash:${pv}`, sha256("hp-1")],
      [`volumeContext:${pv}`, { a: "b" }],
    ]);
    const ctx = resolve(publish!.request.volumeContext!, learnt) as Record<string, string>;
    assert.equal(ctx.a, "b", "the PV's volume attributes are spread into volume_context");
    assert.equal(ctx["csi.storage.k8s.io/pod.name"], "hello-writer", "podInfoOnMount");
  });

  it("a WaitForFirstConsumer claim is provisioned when its pod is scheduled, with the node's topology", () => {
    const steps = planOf("pvc-pod");
    const create = steps.find((s) => calls([s]).some((c) => c.method === "CreateVolume"))!;
    assert.match(create.change, /^create Pod /);
    const c = calls([create]).find((x) => x.method === "CreateVolume")!;
    assert.deepEqual(c.request.accessibilityRequirements, { requisite: [{ segments: FACTS.topology }], preferred: [{ segments: FACTS.topology }] });
    assert.deepEqual((c.request.volumeCapabilities as { accessMode: { mode: string } }[])[0]!.accessMode.mode, "SINGLE_NODE_MULTI_WRITER");
  });

  it("a restore names the snapshot the snapshotter took; Retain keeps a volume, Delete deletes it", () => {
    const snap = calls(planOf("snapshot-restore"));
    const taken = snap.find((c) => c.method === "CreateSnapshot")!;
    const restored = snap.filter((c) => c.method === "CreateVolume")[1]!;
    assert.equal(taken.process, "node");
    assert.match(String((restored.request.volumeContentSource as { snapshot: { snapshotId: string } }).snapshot.snapshotId), /^\$\{snapshotId:snapcontent-/);
    const lifecycle = planOf("lifecycle");
    const deletes = calls(lifecycle).filter((c) => c.method === "DeleteVolume");
    assert.equal(deletes.length, 1, "only the lifecycle-delete claim's volume is deleted; the retained one is adopted and kept");
    const kept = lifecycle.flatMap((s) => s.items).filter((i) => i.type === "check" && i.check.type === "volume" && i.check.exists);
    assert.equal(kept.length, 2, "the retained volume is checked to stay, when released and when its adopting claim goes");
  });

  it("modify-volume: a node-local volume's ControllerModifyVolume on the controller is expected to be refused as infeasible", () => {
    const modify = calls(planOf("modify-volume")).find((c) => c.method === "ControllerModifyVolume")!;
    assert.equal(modify.process, "controller");
    assert.equal(modify.expect?.code, "INVALID_ARGUMENT");
  });

  it("with components/attach: ControllerPublishVolume on the controller before NodeStage, its publish_context passed on, ControllerUnpublishVolume after NodeUnstage", () => {
    const withAttach = deploymentFrom(render(path.join(REPO, "test/deploy/fixtures/all-components")), { nodeName: "node-1" });
    assert.equal(withAttach.attachRequired, true);
    assert.equal(withAttach.routes["csi-attacher"], "controller");
    const steps = plan(exampleScenario(loadExample(path.join(EXAMPLES, "pvc-pod"))), withAttach, FACTS, { kubeletDir: KUBELET });
    const order = calls(steps).map((c) => `${c.process} ${c.method}`).filter((c) => !c.endsWith("GetVolume"));
    assert.deepEqual(order, [
      "node CreateVolume",
      "controller ControllerPublishVolume",
      "node NodeStageVolume",
      "node NodePublishVolume",
      "node NodeUnpublishVolume",
      "node NodeUnstageVolume",
      "controller ControllerUnpublishVolume",
      "node DeleteVolume",
    ]);
    const stage = calls(steps).find((c) => c.method === "NodeStageVolume")!;
    assert.match(String(stage.request.publishContext), /^\$\{publishContext:pvc-/);
    assert.equal(calls(steps).find((c) => c.method === "ControllerPublishVolume")!.request.nodeId, "node-1");
  });

  it("every example plans, and a plan is plain JSON, the same every time", () => {
    for (const example of loadExamples(EXAMPLES)) {
      const once = plan(exampleScenario(example), deployment, FACTS, { kubeletDir: KUBELET });
      const twice = plan(exampleScenario(example), deployment, FACTS, { kubeletDir: KUBELET });
      assert.deepEqual(JSON.parse(JSON.stringify(once)), once, example.name);
      assert.deepEqual(twice, once, example.name);
    }
  });
});
