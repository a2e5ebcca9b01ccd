// What must agree between objects agrees: driver name (CSIDriver,
// StorageClasses, the driver's --driver-name), sockets (registrar,
// sidecars, driver), kubelet paths, ServiceAccounts and RBAC, probes and
// ports, and the sidecars the driver's capabilities call for. 0 mismatches.
import { strict as assert } from "node:assert";
import { driverCapabilities } from "./lib/capabilities";
import { checkCluster } from "./lib/check-cluster";
import { checkExample } from "./lib/check-examples";
import { checkPods } from "./lib/check-pods";
import { render } from "./lib/render";
import { examples, FIXTURES, TARGETS } from "./lib/targets";
import * as path from "node:path";

describe("deploy: cross-references agree", () => {
  for (const t of TARGETS) {
    it(`${t.name}: pods, names, accounts and capabilities agree`, async () => {
      const objects = render(t.dir);
      const caps = t.capabilities(await driverCapabilities());
      assert.deepEqual([...checkPods(objects), ...checkCluster(objects, caps)], []);
    });
  }

  const deployment = () => render(path.join(FIXTURES, "all-components"));
  for (const ex of examples()) {
    it(`example ${ex.name}: refers only to what exists`, () => {
      assert.deepEqual([...checkPods(ex.objects), ...checkExample(ex.objects, deployment())], []);
    });
  }
});
