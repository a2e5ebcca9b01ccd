// A claim grown to a size the driver rounds up: csi-resizer calls
// ControllerExpandVolume on the controller (--mode controller), which
// answers for an image volume in whole MiB; the resizer writes that answer
// into the PV. The kubelet asks NodeExpandVolume for the claim's allocated
// size (the 200M the resizer asked for: Kubernetes 1.32 on), and the node
// grows the image in whole MiB. So the PV, the node's record and the image
// file all end at the same whole-MiB size.
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import type { JsonObject } from "../../src/replay/k8s-objects";
import type { Scenario } from "../../src/replay/scenario";
import type { Learnt } from "../../src/replay/steps";
import { describeContained, kindDeployment, replay } from "./replay-harness";
import { growFixture, requiredBytes, type Call, type Reply } from "./grow-fixtures";

const MiB = 1024 * 1024;
/** 200M is 200,000,000 bytes: 190.7 MiB, which an image volume grows to as 191 MiB. */
const ASKED = "200M";
const GROWN = 191 * MiB;

const fixture = growFixture({ className: "grow-image", claimName: "grown", parameters: { backend: "hostpath", capacity: "image" } });
const { storageClass, claim } = fixture;
const pod = fixture.pod("grower");

/** The one PV the scenario makes, by the volume ID learnt for it. */
const pvOf = (learnt: Learnt): string => [...learnt.keys()].find((k) => k.startsWith("volumeId:"))!.slice("volumeId:".length);

describeContained("Replay: a claim grown to a size that is not a whole MiB", function () {
  this.timeout(120_000);

  it("an image volume: the PV, the record and the image are all the controller's whole-MiB answer; NodeExpandVolume asks for the claim's size", async () => {
    const scenario: Scenario = {
      name: "grow-image",
      namespace: "csi-lab-grow-image",
      // No deletion at the end: the volume stays, to be looked at.
      actions: [
        { type: "apply", objects: [storageClass(kindDeployment().driverName), claim("128Mi"), pod] },
        { type: "apply", objects: [claim(ASKED)] },
      ],
    };
    let record: { capacityBytes: number } | undefined;
    let imageBytes: number | undefined;
    const { result, report, events } = await replay(scenario, {
      after: (host, run) => {
        const volumeId = String(run.learnt.get(`volumeId:${pvOf(run.learnt)}`));
        record = JSON.parse(readFileSync(path.join(host.nodeRoot, "volumes", `${volumeId}.json`), "utf8")) as { capacityBytes: number };
        imageBytes = statSync(path.join(host.nodeRoot, "data", volumeId)).size;
      },
    });
    assert.ok(result.ok, report);
    const pv = pvOf(result.learnt);

    const expand = events.find((e): e is Reply => e.type === "reply" && e.call.method === "ControllerExpandVolume")!;
    assert.equal(expand.call.process, "controller");
    const asked = events.find((e): e is Call => e.type === "call" && e.call.method === "ControllerExpandVolume")!;
    assert.equal(requiredBytes(asked.request), 200_000_000, "the resizer asks for the claim's size");
    const answered = (expand.reply as JsonObject).capacityBytes;
    assert.equal(answered, GROWN, "the controller answers in whole MiB");

    const nodeCalls = events.filter((e): e is Call => e.type === "call" && e.call.method === "NodeExpandVolume");
    assert.ok(nodeCalls.length > 0, "the kubelet calls NodeExpandVolume (node_expansion_required)");
    for (const c of nodeCalls) assert.equal(requiredBytes(c.request), 200_000_000, "the kubelet asks the node for the claim's allocated size, not the PV's");
    assert.equal(result.learnt.get(`capacity:${pv}`), GROWN, "the PV records the controller's answer");
    assert.equal(record?.capacityBytes, GROWN, "the node's record");
    assert.equal(imageBytes, GROWN, "the image file");
  });
});
