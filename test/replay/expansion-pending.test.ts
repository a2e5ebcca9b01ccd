// A claim grown while no pod uses it: csi-resizer's ControllerExpandVolume
// (on the controller, --mode controller) answers node_expansion_required,
// and the claim waits with NodeResizePending. The node's half is done when
// a pod next mounts the volume: the kubelet calls NodeExpandVolume right
// after NodePublishVolume (operation_generator.go: MountVolume.SetUp, then
// expandVolumeDuringMount), for the claim's allocated size (the size the
// resizer asked for, which Kubernetes 1.32 on hands the kubelet), and marks
// the resize finished with status.capacity that size; the pod sees the new
// size. The kubelet expands at a mount while status.capacity is below the
// PV's capacity: the driver answered in whole MiB, more than was asked, so
// a later pod's mount calls NodeExpandVolume again, which finds nothing to
// do and changes no status.
import assert from "node:assert/strict";
import { readFileSync, statfsSync } from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "../../src/mount/mountinfo";
import type { JsonObject } from "../../src/replay/k8s-objects";
import type { ReplayEvent } from "../../src/replay/run";
import type { Scenario } from "../../src/replay/scenario";
import { IMAGE_FS_PROGRAMS, skipUnlessInstalled } from "../sanity/programs";
import { describeContained, kindDeployment, replay } from "./replay-harness";
import { growFixture, requiredBytes, type Call, type Reply } from "./grow-fixtures";

const MiB = 1024 * 1024;
const NAMESPACE = "csi-lab-grow-unused";

const fixture = (fsType: string) =>
  growFixture({ className: "grow-unused", claimName: "grown-unused", parameters: { backend: "hostpath", capacity: "image", "csi.storage.k8s.io/fstype": fsType } });
const { claim, pod } = fixture("ext4");
const storageClass = (driver: string, fsType: string) => fixture(fsType).storageClass(driver);

const CASES = [
  // XFS grows mounted without CAP_SYS_RESOURCE: one NodeExpandVolume, answered OK. Large enough that XFS's own
  // log (64 MiB) stays within the 10% the size check allows; the image files are sparse.
  { fsType: "xfs", from: "2Gi", fromBytes: 2048 * MiB, to: "3G", toBytes: 3_000_000_000, grown: 2862 * MiB },
  // ext4 (the default): where the driver lacks CAP_SYS_RESOURCE (this machine), the first NodeExpandVolume answers
  // FAILED_PRECONDITION and the volume grows when staged again; one NodeExpandVolume answers OK either way.
  { fsType: "ext4", from: "128Mi", fromBytes: 128 * MiB, to: "200M", toBytes: 200_000_000, grown: 191 * MiB },
];

describeContained("Replay: a claim grown while no pod uses it", function () {
  this.timeout(120_000);

  for (const c of CASES) {
    it(`${c.fsType} image: NodeExpandVolume right after the next pod's NodePublishVolume, for the claim's allocated size, which finishes the resize; the pod sees the new size`, async function () {
      skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS[c.fsType]!);
      const scenario: Scenario = {
        name: "grow-unused",
        namespace: NAMESPACE,
        // No deletion at the end: the last pod's mount stays, to be looked at.
        actions: [
          { type: "apply", objects: [storageClass(kindDeployment().driverName, c.fsType), claim(c.from), pod("first")] },
          { type: "delete", kind: "Pod", name: "first" },
          { type: "apply", objects: [claim(c.to)] },
          { type: "apply", objects: [pod("second")] },
          { type: "delete", kind: "Pod", name: "second" },
          { type: "apply", objects: [pod("third")] },
        ],
      };
      let seen: { target: string; bytes: number; record: number } | undefined;
      const { result, report, events, steps } = await replay(scenario, {
        after: (host, run) => {
          // The one pod left (the third) has the volume mounted under pods/.
          const [target] = readMountInfo().map((m) => m.mountPoint).filter((m) => m.startsWith(path.join(host.kubeletDir, "pods") + "/"));
          if (!target) throw new Error("no pod has the volume mounted");
          const volumeId = String([...run.learnt].find(([k]) => k.startsWith("volumeId:"))![1]);
          const s = statfsSync(target);
          const record = (JSON.parse(readFileSync(path.join(host.nodeRoot, "volumes", `${volumeId}.json`), "utf8")) as { capacityBytes: number }).capacityBytes;
          seen = { target, bytes: s.blocks * s.bsize, record };
        },
      });
      assert.ok(result.ok, report);
      const stepOf = (change: string) => steps.find((s) => s.change === change)!.n;
      const resizeStep = stepOf(`update PersistentVolumeClaim ${NAMESPACE}/grown-unused`);
      const secondStep = stepOf(`create Pod ${NAMESPACE}/second`);
      const thirdStep = stepOf(`create Pod ${NAMESPACE}/third`);

      const controller = events.find((e): e is Reply => e.type === "reply" && e.call.method === "ControllerExpandVolume")!;
      assert.equal(controller.step, resizeStep);
      assert.deepEqual(
        [(controller.reply as JsonObject).capacityBytes, (controller.reply as JsonObject).nodeExpansionRequired],
        [c.grown, true],
        "the controller answers in whole MiB, and the node must follow",
      );

      const replies = events.filter((e): e is Reply => e.type === "reply");
      const expands = replies.filter((e) => e.call.method === "NodeExpandVolume");
      assert.deepEqual(
        [...new Set(expands.map((e) => e.step))],
        [secondStep, thirdStep],
        "the kubelet expands on the node only when a pod mounts the volume, not at the resize: the next pod's mount, and the third's",
      );
      assert.equal(expands.filter((e) => e.step === secondStep && e.code === "OK").length, 1, "one NodeExpandVolume finishes the pending resize");
      assert.deepEqual(
        expands.filter((e) => e.step === thirdStep).map((e) => e.code),
        ["OK"],
        "the third pod's mount: status.capacity (the size asked) is below the PV's (the whole-MiB answer), so the kubelet asks again; nothing is left to grow",
      );
      const finished = events.filter((e): e is Extract<ReplayEvent, { type: "record" }> => e.type === "record" && /resize finished/.test(e.what));
      assert.deepEqual(
        finished.map((e) => e.step),
        [secondStep],
        "the second pod's expansion marks the resize finished; the third's changes no status",
      );
      const publish = replies.findIndex((e) => e.step === secondStep && e.call.method === "NodePublishVolume");
      assert.equal(replies[publish + 1]?.call.method, "NodeExpandVolume", "the kubelet expands right after mounting the volume for the pod");
      const requests = events.filter((e): e is Call => e.type === "call" && e.call.method === "NodeExpandVolume").map((e) => requiredBytes(e.request));
      assert.deepEqual(new Set(requests), new Set([c.toBytes]), "for the claim's allocated size, not the PV's capacity (the controller's answer)");

      const sees = events.filter((e) => e.type === "check" && e.step === secondStep && /sees the \d+ bytes/.test(e.what));
      assert.deepEqual(sees.map((e) => e.type === "check" && e.ok), [true], "the second pod's size check ran and held");
      assert.equal(seen?.record, c.grown, "the node's record");
      assert.ok(seen.bytes > c.fromBytes, `the last pod sees ${seen.bytes} bytes at ${seen.target}, more than the ${c.fromBytes} the volume had`);
    });
  }
});
