// `csi-lab rpc csi` sends a real CreateVolume to a real csi-lab driver on a
// unix socket and narrates it: gRPC path, protobuf bytes with CSI's field
// names, status trailers; then a retry (same volume) and a conflict.
import assert from "node:assert/strict";
import { csiExplained } from "../../src/rpc-demo/walkthrough/csi-explained";

describe("CSI explained", () => {
  it("narrates CreateVolume to the driver, its idempotent retry, and ALREADY_EXISTS", async () => {
    const out: string[] = [];
    const { ok } = await csiExplained({ endpoint: undefined, volumeName: "pvc-test-explained", plain: true, write: (t) => out.push(t) });
    const text = out.join("\n");
    assert.ok(ok, text);
    assert.match(text, /by name  \/csi\.v1\.Controller\/CreateVolume/);
    assert.match(text, /tag: field 1 name, wire type 2 LEN \(string\)/);
    assert.match(text, /length 18, then "pvc-test-explained"/);
    assert.match(text, /enum SINGLE_NODE_WRITER = 1/);
    assert.match(text, /tag: field 2 volume_id, wire type 2 LEN \(string\)/);
    assert.match(text, /grpc-status: 0/);
    assert.match(text, /✓ Same volume_id hp-[0-9a-f]+: CreateVolume is idempotent by name/);
    assert.match(text, /grpc-status: 6/);
    assert.match(text, /The driver answers ALREADY_EXISTS: volume "pvc-test-explained" already exists/);
  });
});
