// Every example of deploy/examples, replayed as Kubernetes would play it
// against the driver run as the manifests run it: the calls each sidecar
// and the kubelet make, on the process the manifests route them to, and
// what a user relies on (data seen by later pods, restores and clones,
// the size after expansion, reclaim, nothing left mounted).
import assert from "node:assert/strict";
import * as net from "node:net";
import * as path from "node:path";
import { exampleScenario, loadExample, loadExamples } from "../../src/replay/scenario";
import { describeContained, EXAMPLES_DIR, callsOf, replay } from "./replay-harness";

describeContained("Replay of the examples (the kind overlay's manifests)", function () {
  this.timeout(120_000);
  for (const example of loadExamples(EXAMPLES_DIR)) {
    it(`${example.name}: every call answers as Kubernetes needs, and every check holds`, async () => {
      const { result, report, events, metrics, loopsLeft } = await replay(exampleScenario(example));
      assert.ok(result.ok, `${path.join("deploy/examples", example.name)}:\n${report}`);
      assert.deepEqual(loopsLeft, [], "every loop device the driver attached is detached once its volume is unstaged");
      // The node plugin's /metrics counts the calls it served.
      for (const call of new Set(callsOf(events).filter((c) => c.startsWith("node ")).map((c) => c.split(" ")[1]!))) {
        assert.match(metrics, new RegExp(`csi_lab_rpc_requests_total\\{[^}]*method="${call}"`), `/metrics of the node plugin counts ${call}`);
      }
    });
  }

  it("a metrics port taken before a driver binds it: that process starts again on another port, and the replay holds", async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const { result, report, metricsPorts } = await replay(exampleScenario(loadExample(path.join(EXAMPLES_DIR, "pvc-pod"))), { metricsPorts: { node: port, controller: port } });
      assert.ok(result.ok, report);
      assert.notEqual(metricsPorts.node, port);
      assert.notEqual(metricsPorts.controller, port);
    } finally {
      taken.close();
    }
  });
});
