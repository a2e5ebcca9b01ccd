// A raw block volume (volumeMode: Block) as the kubelet handles it: once
// NodePublishVolume put the device at a pod's target path, the kubelet binds
// it for itself at volumeDevices/<pv>/dev/<pod uid> and asks
// NodeGetVolumeStats there (csi_plugin.go, csi_metrics.go: volume_id and
// volume_path only); it sends NodeExpandVolume the device path it keeps for
// the volume — the target of the pod it mapped the device for last, kept
// even once that pod is gone (operation_generator.go, csi/expander.go) — with
// the staging path, or, expanding as it maps the device for a pod, that
// pod's target, with the staging path only if that mapping staged it. On
// each of its binds it attaches a loop device of its own, which holds the
// device open while the pod runs, and detaches it before
// NodeUnpublishVolume (MapBlockVolume, UnmapBlockVolume): the driver
// unpublishes, grows and unstages around those and never detaches one.
import assert from "node:assert/strict";
import * as path from "node:path";
import type { JsonObject } from "../../src/replay/k8s-objects";
import type { Action, Scenario } from "../../src/replay/scenario";
import { loopsUnder } from "../../src/replay/kubelet-devices";
import type { ReplayEvent } from "../../src/replay/run";
import { describeContained, kindDeployment, replay } from "./replay-harness";
import { apply, growFixture, type Call, type Reply } from "./grow-fixtures";

const NAMESPACE = "csi-lab-block-grow";

const { storageClass, claim, pod } = growFixture({ className: "block-grow", claimName: "raw", parameters: { backend: "hostpath" }, block: true });
const remove = (name: string): Action => ({ type: "delete", kind: "Pod", name });

describeContained("Replay: a raw block volume's paths, as the kubelet sends them", function () {
  this.timeout(120_000);

  it("NodeGetVolumeStats at the kubelet's own bind of the device; NodeExpandVolume at the device path it keeps, even a gone pod's", async () => {
    const scenario: Scenario = {
      name: "block-grow",
      namespace: NAMESPACE,
      actions: [
        apply(storageClass(kindDeployment().driverName), claim("64Mi"), pod("a")),
        apply(pod("b")),
        apply(claim("96Mi")), // online: the device path is b's target (b was mapped last)
        remove("b"),
        apply(claim("128Mi")), // online: still b's target, though b is gone; the staging path shows the volume
        remove("a"),
        apply(claim("160Mi")), // no pod: the resize waits for the next mount
        apply(pod("c")), // mapped for c, which stages it: c's target and the staging path
        { type: "delete-namespace" },
      ],
    };
    const { result, report, events, steps } = await replay(scenario);
    assert.ok(result.ok, report);
    const calls = events.filter((e): e is Call => e.type === "call");
    const replies = events.filter((e): e is Reply => e.type === "reply");
    const stepOf = (change: string) => steps.find((s) => s.change === change)!.n;
    const target = (p: string) => String((calls.find((e) => e.step === stepOf(`create Pod ${NAMESPACE}/${p}`) && e.call.method === "NodePublishVolume")!.request as JsonObject).targetPath);
    const pv = path.basename(path.dirname(target("a")));
    const kubelet = target("a").slice(0, target("a").indexOf("/plugins/"));
    const staging = `${kubelet}/plugins/kubernetes.io/csi/volumeDevices/staging/${pv}`;

    const expands = calls.filter((e) => e.call.method === "NodeExpandVolume");
    assert.deepEqual(
      expands.map((e) => [e.step, (e.request as JsonObject).volumePath, (e.request as JsonObject).stagingTargetPath]),
      [
        [stepOf(`update PersistentVolumeClaim ${NAMESPACE}/raw`), target("b"), staging],
        [steps.filter((s) => s.change === `update PersistentVolumeClaim ${NAMESPACE}/raw`)[1]!.n, target("b"), staging],
        [stepOf(`create Pod ${NAMESPACE}/c`), target("c"), staging],
      ],
    );
    assert.deepEqual(
      replies.filter((e) => e.call.method === "NodeExpandVolume").map((e) => e.code),
      ["OK", "OK", "OK"],
      "the driver grows the device wherever the kubelet's device path points",
    );

    const stats = calls.filter((e) => e.call.method === "NodeGetVolumeStats");
    assert.ok(stats.length >= 2, "the kubelet asks for the volume's stats after each online resize");
    for (const s of stats) {
      assert.match(String((s.request as JsonObject).volumePath), new RegExp(`^${kubelet}/plugins/kubernetes\\.io/csi/volumeDevices/${pv}/dev/[0-9a-f-]{36}$`));
      assert.equal((s.request as JsonObject).stagingTargetPath, undefined, "the kubelet never sends a staging path for stats");
    }
    assert.deepEqual(
      replies.filter((e) => e.call.method === "NodeGetVolumeStats").map((e) => [e.code, ((e.reply as JsonObject).usage as JsonObject[])[0]!.total]),
      [
        ["OK", 96 * 2 ** 20],
        ["OK", 128 * 2 ** 20],
      ],
      "the device's size, seen at the kubelet's bind",
    );
  });

  it("the kubelet's loop device on each pod's bind holds the device; the driver unpublishes, grows and unstages around them and leaves them alone", async () => {
    const scenario: Scenario = {
      name: "block-grow",
      namespace: NAMESPACE,
      actions: [
        apply(storageClass(kindDeployment().driverName), claim("64Mi"), pod("a")),
        apply(pod("b")),
        apply(claim("96Mi")), // online, while both pods' loop devices hold the device
        remove("b"), // b's loop device detached, then NodeUnpublishVolume while a's still holds the device
        remove("a"), // the last: NodeUnpublishVolume, then NodeUnstageVolume
      ],
    };
    let held: string[] = ["not looked at"];
    const { result, report, events, steps, loopsLeft } = await replay(scenario, { after: (host) => void (held = loopsUnder(host.kubeletDir)) });
    assert.ok(result.ok, report);
    type Device = Extract<ReplayEvent, { type: "device" }>;
    const stepOf = (change: string) => steps.find((s) => s.change === change)!.n;
    const uid = (p: string) => {
      const published = events.find((e): e is Call => e.type === "call" && e.call.method === "NodePublishVolume" && e.step === stepOf(`create Pod ${NAMESPACE}/${p}`))!;
      return path.basename(String((published.request as JsonObject).targetPath));
    };
    const seen = events.filter((e): e is Device | Reply => e.type === "device" || (e.type === "reply" && /^Node(Unp|Unst|Exp)/.test(e.call.method)));
    const line = (e: Device | Reply) => (e.type === "device" ? `${e.action} ${path.basename(e.path)}` : `${e.call.method} ${e.code}`);
    assert.deepEqual(seen.map(line), [
      `map ${uid("a")}`,
      `map ${uid("b")}`,
      "NodeExpandVolume OK",
      `unmap ${uid("b")}`,
      "NodeUnpublishVolume OK",
      `unmap ${uid("a")}`,
      "NodeUnpublishVolume OK",
      "NodeUnstageVolume OK",
    ]);
    const maps = events.filter((e): e is Device => e.type === "device" && e.action === "map");
    const unmaps = events.filter((e): e is Device => e.type === "device" && e.action === "unmap");
    assert.equal(new Set(maps.map((e) => e.loop)).size, 2, "a loop device of its own for each pod");
    for (const m of maps) assert.match(m.loop, /^\/dev\/loop\d+$/);
    assert.deepEqual(
      unmaps.map((e) => e.loop),
      [maps[1]!.loop, maps[0]!.loop],
      "each found again by its backing file, still attached: the driver detached neither",
    );
    assert.deepEqual(held, [], "no loop device on the kubelet's binds once the pods are gone");
    assert.deepEqual(loopsLeft, [], "nor on the driver's files");
  });
});
