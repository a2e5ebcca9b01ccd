// When a claim's new size makes csi-resizer call the driver, as in a cluster
// (Kubernetes 1.32 on): the API server takes a lower request only above the
// claim's status.capacity; csi-resizer acts when the request is above
// status.capacity — not above the previous request — and waits while the
// node's half of a resize is pending, then resumes once the kubelet is done.
// status.capacity comes from the driver's answers (CreateVolume's, which an
// image volume rounds up to whole MiB), so the replay compares at run time.
import assert from "node:assert/strict";
import type { Action, Scenario } from "../../src/replay/scenario";
import { apply, growFixture, requiredBytes, type Call, type Reply } from "./grow-fixtures";
import { describeContained, kindDeployment, replay } from "./replay-harness";

const NAMESPACE = "csi-lab-grow-rule";

const { storageClass, claim, pod } = growFixture({ className: "grow-rule", claimName: "grown", parameters: { backend: "hostpath", capacity: "image" } });

async function play(actions: Action[]) {
  const scenario: Scenario = { name: "grow-rule", namespace: NAMESPACE, actions: [apply(storageClass(kindDeployment().driverName)), ...actions, { type: "delete-namespace" }] };
  const r = await replay(scenario);
  assert.ok(r.result.ok, r.report);
  const updates = r.steps.filter((s) => s.change === `update PersistentVolumeClaim ${NAMESPACE}/grown`).map((s) => s.n);
  /** Expansion calls answered OK in step n, with the bytes asked: "ControllerExpandVolume 200000000". */
  const grownAt = (n: number) => {
    const asked = r.events.filter((e): e is Call => e.type === "call" && e.step === n && e.call.method.includes("Expand")).map((e) => requiredBytes(e.request));
    const answers = r.events.filter((e): e is Reply => e.type === "reply" && e.step === n && e.call.method.includes("Expand"));
    return answers.map((e, i) => ({ e, bytes: asked[i] })).filter(({ e }) => e.code === "OK").map(({ e, bytes }) => `${e.call.method} ${String(bytes)}`);
  };
  return { ...r, updates, grownAt };
}

describeContained("Replay: when a claim's new size makes csi-resizer call", function () {
  this.timeout(120_000);

  it("a StorageClass without allowVolumeExpansion: the API server refuses a larger request, and no expansion call is made", async () => {
    const fixed = growFixture({ className: "grow-fixed", claimName: "fixed", parameters: { backend: "hostpath", capacity: "image" } });
    const sc = fixed.storageClass(kindDeployment().driverName);
    delete sc.allowVolumeExpansion;
    const scenario: Scenario = {
      name: "grow-fixed",
      namespace: NAMESPACE,
      actions: [apply(sc, fixed.claim("64Mi"), fixed.pod("app")), apply(fixed.claim("128Mi")), apply(fixed.pod("later")), { type: "delete-namespace" }],
    };
    const { result, report, events, steps } = await replay(scenario);
    assert.ok(result.ok, report);
    assert.deepEqual(events.filter((e): e is Call => e.type === "call" && e.call.method.includes("Expand")), [], "neither ControllerExpandVolume nor NodeExpandVolume");
    const update = steps.find((s) => s.change === `update PersistentVolumeClaim ${NAMESPACE}/fixed`)!;
    assert.match(update.notes.join(" "), /does not set allowVolumeExpansion: true: the API server refuses the update as Forbidden/);
    const pv = [...result.learnt.keys()].find((k) => k.startsWith("volumeId:"))!.slice("volumeId:".length);
    assert.deepEqual([result.learnt.get(`request:${pv}`), result.learnt.get(`claimCapacity:${pv}`)], [64 * 2 ** 20, 64 * 2 ** 20], "the claim keeps its request and size");
  });

  it("a request within what CreateVolume gave (whole MiB) is not above status.capacity: no call; a larger one is", async () => {
    // 100M is 95.4 MiB: the image volume is 96 MiB, and the claim's status.capacity says so.
    const { updates, grownAt, result } = await play([apply(claim("100M"), pod("app")), apply(claim("100500000")), apply(claim("200M"))]);
    const pv = [...result.learnt.keys()].find((k) => k.startsWith("volumeId:"))!.slice("volumeId:".length);
    assert.deepEqual(updates.map(grownAt), [[], ["ControllerExpandVolume 200000000", "NodeExpandVolume 200000000"]]);
    assert.equal(result.learnt.get(`claimCapacity:${pv}`), 200_000_000, "status.capacity after the node's half: the size asked");
  });

  it("raised, lowered back (refused: not above status.capacity), raised to the same size, raised further", async () => {
    const { updates, grownAt, result } = await play([apply(claim("128Mi"), pod("app")), apply(claim("200M")), apply(claim("128Mi")), apply(claim("200M")), apply(claim("300M"))]);
    const pv = [...result.learnt.keys()].find((k) => k.startsWith("volumeId:"))!.slice("volumeId:".length);
    assert.deepEqual(updates.map(grownAt), [["ControllerExpandVolume 200000000", "NodeExpandVolume 200000000"], [], [], ["ControllerExpandVolume 300000000", "NodeExpandVolume 300000000"]]);
    assert.deepEqual([result.learnt.get(`request:${pv}`), result.learnt.get(`claimCapacity:${pv}`)], [300_000_000, 300_000_000]);
  });

  it("raised while the node's half waits (no pod): csi-resizer waits too, and expands once the next pod's mount finished the first resize", async () => {
    const { updates, grownAt, steps, events } = await play([
      apply(claim("128Mi"), pod("first")),
      { type: "delete", kind: "Pod", name: "first" },
      apply(claim("200M")), // ControllerExpandVolume; the claim waits for the node (NodeResizePending), status.capacity still 128Mi
      apply(claim("150M")), // lower, but above status.capacity: taken; nothing to do
      apply(claim("250M")), // above status.capacity, but the node's half is pending: csi-resizer waits
      apply(pod("second")),
    ]);
    assert.deepEqual(updates.map(grownAt), [["ControllerExpandVolume 200000000"], [], []]);
    const second = steps.find((s) => s.change === `create Pod ${NAMESPACE}/second`)!.n;
    assert.deepEqual(grownAt(second), ["NodeExpandVolume 200000000", "ControllerExpandVolume 250000000", "NodeExpandVolume 250000000"]);
    const sees = events.filter((e) => e.type === "check" && e.step === second && /sees the 250000000 bytes/.test(e.what) && e.ok);
    assert.equal(sees.length, 1, "the pod sees the last size asked");
  });
});
