// The offline kustomize subset renders our kustomizations exactly as
// `kubectl kustomize` does, and refuses what it does not understand.
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderSubset } from "./lib/kustomize-subset";
import { kubectlAvailable, renderWithKubectl } from "./lib/render";
import type { K8sObject } from "./lib/objects";
import { FIXTURES, TARGETS } from "./lib/targets";

function byId(objects: readonly K8sObject[]): Map<string, K8sObject> {
  return new Map(objects.map((o) => [`${o.kind}/${String(o.metadata.namespace ?? "")}/${String(o.metadata.name)}`, o]));
}

describe("deploy: offline kustomize subset", () => {
  const dirs = [...TARGETS.map((t) => t.dir), path.join(FIXTURES, "broken-unneeded-sidecar"), path.join(FIXTURES, "broken-excess-rbac")];
  for (const dir of dirs) {
    it(`renders ${path.relative(path.resolve(FIXTURES, "../../.."), dir)} like kubectl kustomize`, function () {
      if (!kubectlAvailable()) {
        console.log("      kubectl not found: cannot compare with the real kustomize (the subset renderer is in use)");
        this.skip();
      }
      const want = byId(renderWithKubectl(dir));
      const got = byId(renderSubset(dir));
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
      for (const [id, o] of want) assert.deepEqual(got.get(id), o, id);
    });
  }

  it("refuses a kustomization field it does not implement", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "kustomize-subset-"));
    try {
      writeFileSync(path.join(dir, "kustomization.yaml"), "resources: []\nnamePrefix: x-\n");
      assert.throws(() => renderSubset(dir), /field "namePrefix" is not supported by the offline renderer/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
