// The hand-written protobuf codec writes exactly the bytes ts-proto writes,
// and reads them back into the same objects, for thousands of random messages.
import assert from "node:assert/strict";
import fc from "fast-check";
import { Sample } from "../../src/gen/rpc-demo";
import { CreateVolumeRequest, CreateVolumeResponse } from "../../src/gen/csi";
import { decode, encode } from "../../src/rpc-demo/codecs/protobuf-codec";
import { schemas } from "../../src/rpc-demo/codecs/schema";
import { sample } from "./arbitraries";

const sampleSchema = schemas().message("csilab.rpcdemo.v1.Sample");
const RUNS = 3000;

describe("hand protobuf codec vs ts-proto", () => {
  it(`encodes ${RUNS} random Samples to identical bytes`, () => {
    // Any string at all here, lone surrogates included: both must write U+FFFD.
    fc.assert(
      fc.property(sample(fc.string({ unit: "binary", maxLength: 12 })), (msg) => {
        const ours = encode(sampleSchema, msg);
        const theirs = Buffer.from(Sample.encode(msg).finish());
        assert.equal(ours.toString("hex"), theirs.toString("hex"));
      }),
      { numRuns: RUNS },
    );
  });

  it(`decodes ts-proto's bytes of ${RUNS} random Samples to the same object`, () => {
    fc.assert(
      fc.property(sample(), (msg) => {
        const bytes = Buffer.from(Sample.encode(msg).finish());
        assert.deepEqual(decode(sampleSchema, bytes), Sample.decode(bytes));
      }),
      { numRuns: RUNS },
    );
  });

  it("matches on a CSI CreateVolumeRequest and its reply (oneofs, maps, nested lists)", () => {
    const req = CreateVolumeRequest.fromPartial({
      name: "pvc-0a1b",
      capacityRange: { requiredBytes: 1 << 30, limitBytes: 0 },
      volumeCapabilities: [
        { mount: { fsType: "ext4", mountFlags: ["noatime"] }, accessMode: { mode: 1 } },
        { block: {}, accessMode: { mode: 5 } },
      ],
      parameters: { tier: "fast", zone: "a" },
      accessibilityRequirements: { requisite: [{ segments: { "topology.csi-lab/node": "n1" } }] },
    });
    const res = CreateVolumeResponse.fromPartial({
      volume: { volumeId: "v-1", capacityBytes: 2 ** 40, volumeContext: { path: "/x" }, accessibleTopology: [{ segments: { a: "b" } }] },
    });
    for (const [name, msg, fns] of [
      ["csi.v1.CreateVolumeRequest", req, CreateVolumeRequest],
      ["csi.v1.CreateVolumeResponse", res, CreateVolumeResponse],
    ] as const) {
      const schema = schemas().message(name);
      const theirs = Buffer.from((fns.encode as (m: typeof msg) => { finish(): Uint8Array })(msg).finish());
      assert.equal(encode(schema, msg).toString("hex"), theirs.toString("hex"), name);
      assert.deepEqual(decode(schema, theirs), fns.decode(theirs), name);
    }
  });
});
