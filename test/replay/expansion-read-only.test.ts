// A claim grown while its only pod on the node mounts it read-only
// (persistentVolumeClaim.readOnly): the kubelet skips the online
// NodeExpandVolume ("requested read-only file system", nodeExpandVolume in
// operation_generator.go) and the claim stays NodeResizePending, its
// status.capacity the old size. The next pod that mounts it read-write
// expands it right after its NodePublishVolume, which finishes the resize.
import assert from "node:assert/strict";
import type { K8sObject } from "../../src/replay/k8s-objects";
import type { Scenario } from "../../src/replay/scenario";
import { IMAGE_FS_PROGRAMS, skipUnlessInstalled } from "../sanity/programs";
import { apply, growFixture, requiredBytes, type Call, type Reply } from "./grow-fixtures";
import { describeContained, kindDeployment, replay } from "./replay-harness";

const NAMESPACE = "csi-lab-grow-read-only";

// XFS grows mounted without CAP_SYS_RESOURCE, so the read-write pod's expansion is one call (expansion-pending.test.ts).
const { storageClass, claim, pod } = growFixture({
  className: "grow-read-only",
  claimName: "shown",
  parameters: { backend: "hostpath", capacity: "image", "csi.storage.k8s.io/fstype": "xfs" },
});

/** The fixture's pod, with its claim mounted read-only. */
function readOnlyPod(name: string): K8sObject {
  const o = pod(name);
  const spec = o.spec as { volumes: { persistentVolumeClaim: Record<string, unknown> }[] };
  spec.volumes[0]!.persistentVolumeClaim.readOnly = true;
  return o;
}

describeContained("Replay: a claim grown while a pod mounts it read-only", function () {
  this.timeout(120_000);

  it("no NodeExpandVolume for the read-only pod: the claim waits (NodeResizePending) until a read-write mount expands it", async function () {
    skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS.xfs!);
    const scenario: Scenario = {
      name: "grow-read-only",
      namespace: NAMESPACE,
      actions: [
        apply(storageClass(kindDeployment().driverName), claim("2Gi"), readOnlyPod("reader")),
        apply(claim("3G")),
        apply(pod("writer")),
        { type: "delete-namespace" },
      ],
    };
    const { result, report, events, steps } = await replay(scenario);
    assert.ok(result.ok, report);
    const stepOf = (change: string) => steps.find((s) => s.change === change)!.n;
    const resize = stepOf(`update PersistentVolumeClaim ${NAMESPACE}/shown`);
    const writer = stepOf(`create Pod ${NAMESPACE}/writer`);
    const replies = events.filter((e): e is Reply => e.type === "reply");
    const at = (n: number) => replies.filter((e) => e.step === n && e.call.method.includes("Expand")).map((e) => `${e.call.method} ${e.code}`);

    assert.deepEqual(at(resize), ["ControllerExpandVolume OK"], "the controller grows the volume; the kubelet does not expand a read-only pod's volume");
    const pv = [...result.learnt.keys()].find((k) => k.startsWith("volumeId:"))!.slice("volumeId:".length);
    const waiting = events.filter((e) => e.type === "record" && e.step === resize && /NodeResizePending/.test(e.what));
    assert.equal(waiting.length, 1, "csi-resizer marks the claim NodeResizePending");
    const finished = events.filter((e) => e.type === "record" && /resize finished/.test(e.what)).map((e) => e.type === "record" && e.step);
    assert.deepEqual(finished, [writer], "only the read-write pod's mount finishes the resize");

    assert.deepEqual(at(writer), ["NodeExpandVolume OK"], "the read-write pod's mount expands the volume");
    const publish = replies.findIndex((e) => e.step === writer && e.call.method === "NodePublishVolume");
    assert.equal(replies[publish + 1]?.call.method, "NodeExpandVolume", "right after NodePublishVolume");
    const asked = events.filter((e): e is Call => e.type === "call" && e.call.method === "NodeExpandVolume").map((e) => requiredBytes(e.request));
    assert.deepEqual(asked, [3_000_000_000], "for the claim's allocated size");
    assert.equal(result.learnt.get(`claimCapacity:${pv}`), 3_000_000_000);
    const sees = events.filter((e) => e.type === "check" && e.step === writer && /sees the \d+ bytes/.test(e.what));
    assert.deepEqual(sees.map((e) => e.type === "check" && e.ok), [true], "the read-write pod sees the new size");
  });
});
