// Fields a reader's schema does not know survive a decode and re-encode:
// an old program in the middle of a conversation loses nothing.
import assert from "node:assert/strict";
import { Point, Sample } from "../../src/gen/rpc-demo";
import { decode, encode, unknownFieldsOf } from "../../src/rpc-demo/codecs/protobuf-codec";
import { schemas } from "../../src/rpc-demo/codecs/schema";

describe("unknown fields", () => {
  it("a Sample read as a Point keeps every field Point lacks, and writes them back", () => {
    const sample = Buffer.from(Sample.encode({ i32: 3, i64: 4n, text: "kept", labels: { a: "b" }, f64: 99n, id: 1n }).finish());
    const point = decode<Point>(schemas().message("csilab.rpcdemo.v1.Point"), sample);
    assert.deepEqual(point, { x: 3, y: 4 }); // fields 1 and 2 mean x and y to a Point reader
    assert.equal(unknownFieldsOf(point).length, 4);
    const again = encode(schemas().message("csilab.rpcdemo.v1.Point"), point);
    assert.deepEqual(Sample.decode(again), Sample.decode(sample));
  });

  it("a known field number with the wrong wire type is kept as unknown, not misread", () => {
    const bytes = Buffer.from([0x0a, 0x01, 0x41, 0x10, 0x02]); // field 1 as LEN "A", then y = 2
    const point = decode<Point>(schemas().message("csilab.rpcdemo.v1.Point"), bytes);
    assert.deepEqual(point, { x: 0, y: 2 });
    assert.deepEqual(encode(schemas().message("csilab.rpcdemo.v1.Point"), point), Buffer.from([0x10, 0x02, 0x0a, 0x01, 0x41]));
  });
});
