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
import type { Action } from "../../src/replay/scenario";
import type { JsonObject, K8sObject } from "../../src/replay/k8s-objects";
import { resolve, type PlannedCall, type Step } from "../../src/replay/steps";
import { callsIn, dryRun, type ImaginedDriver } from "./dry-run";
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
    const steps = planOf("expansion");
    const grow = (driver: ImaginedDriver) => dryRun(steps, driver).calls.filter((c) => c.call.method.includes("Expand"));
    const asked = grow({ nodeExpansionRequired: true });
    assert.deepEqual(
      asked.map((c) => [c.call.method, c.call.process, c.call.caller, (c.request.capacityRange as JsonObject).requiredBytes]),
      [
        ["ControllerExpandVolume", "controller", "csi-resizer", 2 * 2 ** 30],
        ["NodeExpandVolume", "node", "kubelet", 2 * 2 ** 30],
      ],
    );
    assert.deepEqual(
      grow({ nodeExpansionRequired: false }).map((c) => c.call.method),
      ["ControllerExpandVolume"],
      "without node_expansion_required the resizer finishes the resize",
    );
    // The kubelet asks for the claim's status.allocatedResources, the 2Gi csi-resizer asked for, not the PV's capacity (the controller's answer).
    const rounded = grow({ capacity: (n) => n + 2 ** 20 });
    assert.deepEqual(rounded.map((c) => (c.request.capacityRange as JsonObject).requiredBytes), [2 * 2 ** 30, 2 * 2 ** 30]);
  });

  const claim = (storage: string, extra: JsonObject = {}) => ({
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: "grown" },
    spec: { storageClassName: "csi-lab-hostpath", accessModes: ["ReadWriteOnce"], resources: { requests: { storage } }, ...extra },
  });
  const pod = (name: string, readOnly = false) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name },
    spec: { containers: [{ name: "app", image: "busybox:1.37.0" }], volumes: [{ name: "data", persistentVolumeClaim: { claimName: "grown", readOnly } }] },
  });
  const planActions = (actions: Action[]) => plan({ name: "grow", namespace: "ns", actions }, deployment, FACTS, { kubeletDir: KUBELET });
  const apply = (...objects: JsonObject[]): Action => ({ type: "apply", objects: objects as K8sObject[] });
  const GiB = 2 ** 30;

  it("a claim grown while no pod uses it: NodeExpandVolume right after the next read-write pod's NodePublishVolume, which finishes the resize", () => {
    const steps = planActions([
      apply(claim("1Gi"), pod("first")),
      { type: "delete", kind: "Pod", name: "first" },
      apply(claim("2Gi")),
      apply(pod("reader", true)),
      apply(pod("writer")),
      apply(pod("third")),
    ]);
    const exact = dryRun(steps).calls;
    assert.deepEqual(callsIn(exact, "update PersistentVolumeClaim ns/grown"), [`ControllerExpandVolume ${2 * GiB}`], "no pod: nothing on the node yet");
    assert.deepEqual(callsIn(exact, "create Pod ns/reader"), ["NodeStageVolume", "NodePublishVolume"], "a read-only mount is not expanded");
    assert.deepEqual(callsIn(exact, "create Pod ns/writer"), ["NodePublishVolume", `NodeExpandVolume ${2 * GiB}`], "after mounting for the pod (the reader staged it)");
    const [publish, expand] = exact.filter((c) => c.step.change === "create Pod ns/writer");
    assert.equal(expand!.request.volumePath, publish!.request.targetPath);
    assert.deepEqual(callsIn(exact, "create Pod ns/third"), ["NodePublishVolume"], "status.capacity is the PV's again: the next pod is not expanded");
    // A driver that rounds up leaves status.capacity (the size asked) below the PV's: each later mount expands again.
    const rounded = dryRun(steps, { capacity: (n) => n + 2 ** 20 }).calls;
    assert.deepEqual(callsIn(rounded, "create Pod ns/third"), ["NodePublishVolume", `NodeExpandVolume ${2 * GiB}`]);
  });

  it("csi-resizer compares the request with status.capacity: a request within what the driver already gave makes no call", () => {
    const steps = planActions([apply(claim("1Gi"), pod("app")), apply(claim("1025Mi")), apply(claim("2Gi"))]);
    // CreateVolume answers 1GiB and 2MiB: status.capacity is that, and 1025Mi is within it.
    const { calls } = dryRun(steps, { capacity: (n) => n + 2 * 2 ** 20 });
    const [within, beyond] = steps.filter((s) => s.change === "update PersistentVolumeClaim ns/grown").map((s) => s.n);
    const at = (n: number) => calls.filter((c) => c.step.n === n).map((c) => c.call.method);
    assert.deepEqual(at(within!), [], "1025Mi is not above status.capacity");
    assert.deepEqual(at(beyond!), ["ControllerExpandVolume", "NodeExpandVolume", "NodeGetVolumeStats"]);
  });

  it("a request raised, lowered back (refused: not above status.capacity) and raised again: calls as in a cluster", () => {
    const steps = planActions([apply(claim("1Gi"), pod("app")), apply(claim("2Gi")), apply(claim("1Gi")), apply(claim("2Gi")), apply(claim("3Gi"))]);
    const updates = steps.filter((s) => s.change === "update PersistentVolumeClaim ns/grown").map((s) => s.n);
    const { calls, learnt } = dryRun(steps);
    const at = (n: number) => calls.filter((c) => c.step.n === n && c.call.method.includes("Expand")).map((c) => `${c.call.method} ${String((c.request.capacityRange as JsonObject).requiredBytes)}`);
    assert.deepEqual(updates.map(at), [
      [`ControllerExpandVolume ${2 * GiB}`, `NodeExpandVolume ${2 * GiB}`],
      [],
      [],
      [`ControllerExpandVolume ${3 * GiB}`, `NodeExpandVolume ${3 * GiB}`],
    ]);
    const pv = [...learnt.keys()].find((k) => k.startsWith("request:"))!.slice("request:".length);
    assert.deepEqual([learnt.get(`request:${pv}`), learnt.get(`claimCapacity:${pv}`)], [3 * GiB, 3 * GiB]);
    const refused = steps.find((s) => s.n === updates[1])!;
    assert.ok(refused.notes.some((n) => /refuses the update/.test(n)), "the lowering's step says the API server may refuse it");
  });

  it("a request raised while the node's half of a resize waits: csi-resizer waits too, and expands once the kubelet is done", () => {
    const steps = planActions([
      apply(claim("1Gi"), pod("first")),
      { type: "delete", kind: "Pod", name: "first" },
      apply(claim("2Gi")),
      apply(claim("1536Mi")), // above status.capacity (1Gi, the node's half pending): taken
      apply(claim("3Gi")),
      apply(pod("second")),
    ]);
    const { calls } = dryRun(steps);
    const updates = steps.filter((s) => s.change === "update PersistentVolumeClaim ns/grown").map((s) => s.n);
    assert.deepEqual(
      updates.map((n) => calls.filter((c) => c.step.n === n).map((c) => c.call.method)),
      [["ControllerExpandVolume"], [], []],
      "the raise to 3Gi waits for the node (NodeResizePending)",
    );
    assert.deepEqual(callsIn(calls, "create Pod ns/second"), [
      "NodeStageVolume",
      "NodePublishVolume",
      `NodeExpandVolume ${2 * GiB}`,
      `ControllerExpandVolume ${3 * GiB}`,
      `NodeExpandVolume ${3 * GiB}`,
      "NodeGetVolumeStats",
    ]);
  });

  it("a raw block volume: the kubelet binds the device for itself, asks NodeGetVolumeStats there, and NodeExpandVolume at the device path it keeps", () => {
    const block = { volumeMode: "Block" };
    const steps = planActions([
      apply(claim("1Gi", block), pod("a")),
      apply(pod("b")),
      apply(claim("2Gi", block)),
      { type: "delete", kind: "Pod", name: "b" },
      apply(claim("3Gi", block)),
      { type: "delete", kind: "Pod", name: "a" },
      apply(claim("4Gi", block)),
      apply(pod("c")),
      apply(pod("d")),
      apply(claim("5Gi", block)),
      { type: "delete", kind: "Pod", name: "c" },
    ]);
    const { calls } = dryRun(steps, { capacity: (n) => n + 2 ** 20 });
    const of = (method: string, change: string) => calls.filter((c) => c.call.method === method && c.step.change === change);
    const target = (pod: string) => String(of("NodePublishVolume", `create Pod ns/${pod}`)[0]!.request.targetPath);
    const pv = /volumeDevices\/publish\/([^/]+)\//.exec(target("a"))![1]!;
    const uid = (pod: string) => path.basename(target(pod));
    const staging = `${KUBELET}/plugins/kubernetes.io/csi/volumeDevices/staging/${pv}`;

    const publishB = of("NodePublishVolume", "create Pod ns/b")[0]!;
    assert.deepEqual(publishB.call.bindAfter, { source: target("b"), target: `${KUBELET}/plugins/kubernetes.io/csi/volumeDevices/${pv}/dev/${uid("b")}` }, "MapBlockVolume's bind");
    assert.equal(of("NodeUnpublishVolume", "delete Pod ns/b")[0]!.call.unbindBefore, publishB.call.bindAfter!.target, "undone before NodeUnpublishVolume");

    const updates = steps.filter((s) => s.change === "update PersistentVolumeClaim ns/grown");
    const expands = updates.map((u) => calls.filter((c) => c.step === u && c.call.method === "NodeExpandVolume").map((c) => [c.request.volumePath, c.request.stagingTargetPath]));
    assert.deepEqual(expands, [
      [[target("b"), staging]],
      [[target("b"), staging]], // pod b is gone: the kubelet still keeps its target as the device path
      [], // no pod: the resize waits for the next mount
      [[target("d"), staging]],
    ]);
    const stats = calls.filter((c) => c.call.method === "NodeGetVolumeStats").map((c) => c.request);
    assert.deepEqual(stats[0], { volumeId: `vol-${pv}`, volumePath: `${KUBELET}/plugins/kubernetes.io/csi/volumeDevices/${pv}/dev/${uid("a")}` }, "no staging_target_path, ever");
    // Expanded as it is mapped for pod c, which staged it; pod d found it staged, and its mount repeats the expansion without a staging path.
    assert.deepEqual(
      [of("NodeExpandVolume", "create Pod ns/c"), of("NodeExpandVolume", "create Pod ns/d")].map((cs) => cs.map((c) => [c.request.volumePath, c.request.stagingTargetPath])),
      [[[target("c"), staging]], [[target("d"), undefined]]],
    );
  });

  it("an unbound claim's size cannot change: the API server refuses it, and the volume is made at the first size", () => {
    const wait = { apiVersion: "storage.k8s.io/v1", kind: "StorageClass", metadata: { name: "wait" }, provisioner: "csi-lab.example.org", volumeBindingMode: "WaitForFirstConsumer" };
    const steps = planActions([apply(wait, claim("1Gi", { storageClassName: "wait" })), apply(claim("2Gi", { storageClassName: "wait" })), apply(pod("app"))]);
    const create = dryRun(steps).calls.find((c) => c.call.method === "CreateVolume")!;
    assert.deepEqual(create.request.capacityRange, { requiredBytes: GiB, limitBytes: 0 });
  });

  it("a larger request of a claim whose StorageClass does not allow expansion: the API server refuses it, and nothing is expanded", () => {
    const unset = { apiVersion: "storage.k8s.io/v1", kind: "StorageClass", metadata: { name: "unset" }, provisioner: "csi-lab.example.org" };
    const fixed = { ...unset, metadata: { name: "fixed" }, allowVolumeExpansion: false };
    for (const sc of [fixed, unset]) {
      const name = sc.metadata.name;
      const steps = planActions([apply(sc, claim("1Gi", { storageClassName: name }), pod("app")), apply(claim("2Gi", { storageClassName: name })), apply(pod("later"))]);
      const { calls } = dryRun(steps);
      assert.deepEqual(calls.filter((c) => c.call.method.includes("Expand")), [], `StorageClass ${name}`);
      const update = steps.find((s) => s.change === "update PersistentVolumeClaim ns/grown")!;
      assert.match(update.notes.join(" "), /refuses the update as Forbidden \(only a dynamically provisioned claim whose StorageClass allows volume expansion may grow\)/);
    }
  });

  it("NodeExpandVolume's volume_capability is the PV's (access mode, fs_type, mount_flags), without the pod's fsGroup as volume_mount_group", () => {
    const sc = {
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: { name: "flagged" },
      provisioner: "csi-lab.example.org",
      parameters: { "csi.storage.k8s.io/fstype": "ext4" },
      mountOptions: ["noatime"],
      allowVolumeExpansion: true,
    };
    const grouped = (name: string) => ({ ...pod(name), spec: { ...pod(name).spec, securityContext: { fsGroup: 2000 } } });
    const steps = planActions([apply(sc, claim("1Gi", { storageClassName: "flagged" }), grouped("app")), apply(claim("2Gi", { storageClassName: "flagged" })), apply(grouped("later"))]);
    // A driver that rounds up: the later pod's mount expands again.
    const { calls } = dryRun(steps, { capacity: (n) => n + 2 ** 20 });
    const capabilities = (method: string) => calls.filter((c) => c.call.method === method).map((c) => c.request.volumeCapability);
    assert.deepEqual(capabilities("NodePublishVolume")[0], { mount: { fsType: "ext4", mountFlags: ["noatime"], volumeMountGroup: "2000" }, accessMode: { mode: "SINGLE_NODE_MULTI_WRITER" } });
    const expand = capabilities("NodeExpandVolume");
    assert.equal(expand.length, 2, "online, and again at the later pod's mount");
    for (const c of expand) assert.deepEqual(c, { mount: { fsType: "ext4", mountFlags: ["noatime"], volumeMountGroup: "" }, accessMode: { mode: "SINGLE_NODE_MULTI_WRITER" } });
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
