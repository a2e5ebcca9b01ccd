// Property tests: for every message type in proto/rpc-demo.proto, random
// messages over each field's whole range (64-bit extremes, ±0, NaN and
// ±Infinity, any Unicode, empty and long lists, maps, nesting, unknown
// fields) must give
//   - the same protobuf bytes from our codec as from @bufbuild/protobuf,
//   - the same message back when either side's bytes are decoded,
//   - the same proto3 JSON, both ways,
//   - a dump that shows every byte once, in order, with no error.
import assert from "node:assert/strict";
import { fromBinary, fromJson as refFromJson, fromJsonString, toBinary, toJson as refToJson, toJsonString, type DescMessage } from "@bufbuild/protobuf";
import fc from "fast-check";
import { dumpMessage } from "../../src/rpc-demo/codecs/dump";
import { fromJson, parseJsonText, toJson } from "../../src/rpc-demo/codecs/json-codec";
import { decode, encode } from "../../src/rpc-demo/codecs/protobuf-codec";
import { schemas } from "../../src/rpc-demo/codecs/schema";
import { anyStrings, assertTiles, messageArbitrary, messagesOf, normalizeOurs, normalizeRef, referenceRegistry, toOurs } from "./reference";

const RUNS = 1000;
const registry = referenceRegistry();
const file = registry.getFile("rpc-demo.proto")!;
const types: DescMessage[] = messagesOf(file);

describe("our codecs vs @bufbuild/protobuf, on random messages", () => {
  it("covers every message type of rpc-demo.proto", () => {
    assert.deepEqual(
      types.map((t) => t.typeName),
      ["AddRequest", "AddReply", "IncrementRequest", "IncrementReply", "SleepRequest", "SleepReply", "FailRequest", "FailReply", "Point", "Sample"].map((n) => `csilab.rpcdemo.v1.${n}`),
    );
  });

  for (const desc of types) {
    it(`${desc.name}: same bytes, same messages, same JSON both ways, a dump of every byte (${RUNS} cases)`, () => {
      const schema = schemas().message(desc.typeName);
      let cases = 0;
      fc.assert(
        fc.property(messageArbitrary(desc), (ref) => {
          cases++;
          const theirs = Buffer.from(toBinary(desc, ref));
          const ours = encode(schema, toOurs(desc, ref));
          assert.equal(ours.toString("hex"), theirs.toString("hex"), "protobuf bytes");

          const decoded = decode<Record<string, unknown>>(schema, theirs);
          assert.deepStrictEqual(normalizeOurs(schema, decoded), normalizeRef(desc, ref), "our decode of their bytes");
          // (normalized, not @bufbuild's equals(): that one finds NaN unequal to itself)
          assert.deepStrictEqual(normalizeRef(desc, fromBinary(desc, ours)), normalizeRef(desc, ref), "their decode of our bytes");
          assert.equal(encode(schema, decoded).toString("hex"), theirs.toString("hex"), "decode → encode gives the bytes back");

          const json = toJson(schema, decoded);
          assert.deepStrictEqual(json, refToJson(desc, ref), "proto3 JSON");
          assert.equal(JSON.stringify(json), toJsonString(desc, ref), "proto3 JSON text");
          const back = fromJson(schema, json);
          assert.deepStrictEqual(normalizeOurs(schema, back), normalizeRef(desc, refFromJson(desc, refToJson(desc, ref))), "our reading of their JSON");
          const text = JSON.stringify(json);
          assert.deepStrictEqual(normalizeOurs(schema, fromJson(schema, parseJsonText(text))), normalizeRef(desc, fromJsonString(desc, text)), "and of their JSON text");

          for (const rows of [dumpMessage(theirs, schema), dumpMessage(theirs)]) {
            assertTiles(rows, theirs.length);
            assert.ok(!rows.some((r) => r.error), rows.find((r) => r.error)?.text);
          }
        }),
        { numRuns: RUNS },
      );
      assert.equal(cases, RUNS);
    });
  }

  it(`Sample with any UTF-16 in its strings (lone surrogates become U+FFFD on both sides): same bytes (${RUNS} cases)`, () => {
    const desc = registry.getMessage("csilab.rpcdemo.v1.Sample")!;
    const schema = schemas().message(desc.typeName);
    fc.assert(
      fc.property(messageArbitrary(desc, { strings: anyStrings, unknown: false }), (ref) => {
        assert.equal(encode(schema, toOurs(desc, ref)).toString("hex"), Buffer.from(toBinary(desc, ref)).toString("hex"));
      }),
      { numRuns: RUNS },
    );
  });
});
