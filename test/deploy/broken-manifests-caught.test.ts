// Each deliberately broken fixture (test/deploy/fixtures/broken-*) is
// caught, by the check meant to catch it.
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { driverCapabilities } from "./lib/capabilities";
import { checkCluster } from "./lib/check-cluster";
import { checkExample } from "./lib/check-examples";
import { checkPods } from "./lib/check-pods";
import { describe as label, readObjects } from "./lib/objects";
import { render } from "./lib/render";
import { validateObject } from "./lib/schema";
import { FIXTURES, REPO } from "./lib/targets";

const CASES: [fixture: string, caughtBy: RegExp][] = [
  ["broken-schema", /mountPropagation must be equal to one of the allowed values/],
  ["broken-registration-path", /--kubelet-registration-path \S+ is not the driver's socket on the host/],
  ["broken-provisioner-name", /StorageClass\/csi-lab-hostpath: provisioner is "csi-lab\.example\.com", the CSIDriver is csi-lab\.example\.org/],
  ["broken-service-account", /serviceAccountName csi-lab\/csi-lab-nodes does not exist/],
  ["broken-socket", /container csi-provisioner: --csi-address \/csi\/driver\.sock is not the driver's socket/],
  ["broken-unneeded-sidecar", /csi-attacher is deployed, but the driver does not advertise PUBLISH_UNPUBLISH_VOLUME/],
  ["broken-kubelet-dir", /host path \/var\/snap\/microk8s\/common\/var\/lib\/kubelet\/pods is mounted at \/var\/lib\/kubelet\/pods/],
  ["broken-excess-rbac", /ClusterRole\/csi-lab-secrets is bound to it, but none of its sidecars needs it/],
  ["broken-driver-flag", /the driver would refuse its arguments: --mode must be all, controller or node/],
  ["broken-share-not-allowed", /StorageClass\/csi-lab-nfs: share nfs\.example\.internal:\/exports\/elsewhere is not allowed by .*--allow-share/],
  ["broken-driver-kubelet-dir", /the kubelet's directory is \/var\/snap\/microk8s\/common\/var\/lib\/kubelet, but the driver's --kubelet-dir is \/var\/lib\/kubelet/],
];

async function everyProblem(dir: string): Promise<string[]> {
  const objects = render(dir);
  const problems = [...checkPods(objects), ...checkCluster(objects, await driverCapabilities())];
  for (const o of objects) for (const e of (await validateObject(o)).errors) problems.push(`${label(o)}: ${e}`);
  return problems;
}

describe("deploy: broken manifests are caught", () => {
  for (const [fixture, caughtBy] of CASES) {
    it(`${fixture} is reported`, async () => {
      const problems = await everyProblem(path.join(FIXTURES, fixture));
      assert.ok(
        problems.some((p) => caughtBy.test(p)),
        `expected a problem matching ${caughtBy}, got:\n${problems.join("\n") || "(none)"}`,
      );
    });
  }

  it("broken-example: an unknown StorageClass, a missing claim and a wrong topology key are reported", () => {
    const objects = readObjects(path.join(FIXTURES, "broken-example/01-claim.yaml"));
    const problems = checkExample(objects, render(path.join(REPO, "deploy/kubernetes")));
    assert.ok(problems.some((p) => /StorageClass csi-lab-hostpth does not exist/.test(p)), problems.join("\n"));
    assert.ok(problems.some((p) => /mounts claim dta, which is not in the example/.test(p)), problems.join("\n"));
    assert.ok(problems.some((p) => /nodeAffinity key kubernetes\.io\/hostname is not the driver's topology key/.test(p)), problems.join("\n"));
  });
});
