// Every object that the kustomizations render, and every object in the
// examples, is valid against the Kubernetes OpenAPI schemas
// (kubernetes-models; two kinds metadata only, see lib/schema.ts): 0
// invalid objects.
import { strict as assert } from "node:assert";
import { render } from "./lib/render";
import { validateObject } from "./lib/schema";
import { describe as label, type K8sObject } from "./lib/objects";
import { examples, TARGETS } from "./lib/targets";

async function invalid(objects: readonly K8sObject[]): Promise<{ errors: string[]; metadataOnly: number }> {
  const errors: string[] = [];
  let metadataOnly = 0;
  for (const o of objects) {
    const r = await validateObject(o);
    if (r.coverage === "metadata") metadataOnly++;
    for (const e of r.errors) errors.push(`${label(o)}: ${e}`);
  }
  return { errors, metadataOnly };
}

describe("deploy: manifests are valid Kubernetes objects", () => {
  for (const t of TARGETS) {
    it(`${t.name}: every rendered object passes its schema`, async () => {
      const objects = render(t.dir);
      assert.ok(objects.length >= 10, `rendered only ${objects.length} objects`);
      const { errors } = await invalid(objects);
      assert.deepEqual(errors, []);
    });
  }

  for (const ex of examples()) {
    it(`example ${ex.name}: every object passes its schema`, async () => {
      assert.ok(ex.objects.length > 0, "the example has no objects");
      const { errors } = await invalid(ex.objects);
      assert.deepEqual(errors, []);
    });
  }

  it("schema-checks each object once in all, and says how many had metadata only", async () => {
    const all = [...TARGETS.flatMap((t) => render(t.dir)), ...examples().flatMap((e) => e.objects)];
    const { errors, metadataOnly } = await invalid(all);
    assert.deepEqual(errors, []);
    // VolumeSnapshot and VolumeAttributesClass kinds have no model here; see lib/schema.ts.
    console.log(
      `      ${all.length} objects validated, ${all.length - metadataOnly} against their full schema, ` +
        `${metadataOnly} (snapshot.storage.k8s.io, VolumeAttributesClass) metadata only, 0 invalid`,
    );
  });
});
