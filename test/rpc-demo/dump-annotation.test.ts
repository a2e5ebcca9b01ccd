// The annotated dump names every byte range: tag, length, value, nesting —
// with the schema by field name and type, without it from the wire alone.
import assert from "node:assert/strict";
import { Sample } from "../../src/gen/rpc-demo";
import { dumpMessage, formatDump } from "../../src/rpc-demo/codecs/dump";
import { schemas } from "../../src/rpc-demo/codecs/schema";

const bytes = Buffer.from(Sample.encode({ i32: 150, s64: -2, text: "hi", point: { x: 1 }, numbers: [1, 300], id: 7 }).finish());

describe("annotated protobuf dump", () => {
  it("with the schema, labels each range with field, wire type and typed value", () => {
    const text = formatDump(bytes, dumpMessage(bytes, schemas().message("csilab.rpcdemo.v1.Sample")));
    const lines = text.split("\n");
    assert.deepEqual(lines.slice(0, 4), [
      "0000  08                       tag: field 1 i32, wire type 0 VARINT (int32)",
      "0001  96 01                    int32 150",
      "0003  30                       tag: field 6 s64, wire type 0 VARINT (sint64)",
      "0004  03                       sint64 -2 (zigzag 3)",
    ]);
    assert.ok(lines.includes("0005  72                       tag: field 14 text, wire type 2 LEN (string)"));
    assert.ok(lines.includes('0006  02 68 69                 length 2, then "hi" (UTF-8)'));
    assert.ok(lines.includes("000c  08                         tag: field 1 x, wire type 0 VARINT (int32)"), "nested fields are indented");
    assert.ok(lines.includes("0011  01                         int32 1"), "packed elements are listed one by one");
    assert.ok(lines.includes("0012  ac 02                      int32 300"));
    assert.ok(lines.includes("0014  e0 12                    tag: field 300 id, wire type 0 VARINT (int64)"), "a two-byte tag");
  });

  it("covers every byte exactly once", () => {
    const rows = dumpMessage(bytes, schemas().message("csilab.rpcdemo.v1.Sample"));
    const covered = new Set<number>();
    for (const r of rows) {
      // LEN headers of nested messages cover just the length; their contents are rows of their own.
      for (let i = r.offset; i < r.offset + r.length; i++) {
        assert.ok(!covered.has(i), `byte ${i} appears twice`);
        covered.add(i);
      }
    }
    assert.equal(covered.size, bytes.length);
  });

  it("without a schema, still walks the message and guesses nested messages, text and packed varints", () => {
    const lines = formatDump(bytes, dumpMessage(bytes)).split("\n");
    assert.ok(lines.includes("0001  96 01                    varint 150 (as sint 75)"));
    assert.ok(lines.includes('0007  68 69                      "hi" (looks like UTF-8 text)'));
    assert.ok(lines.includes("000c  08                         tag: field 1, wire type 0 VARINT"), "the Point is recognised as a message");
    assert.ok(lines.includes("0011  01 ac 02                   3 bytes: packed varints? 1, 300"));
  });

  it("keeps going past fields the schema does not know, and says so", () => {
    const withExtra = Buffer.concat([Buffer.from([0x08, 0x01]), Buffer.from([0xc0, 0x3e, 0x05])]); // field 1000 = 5
    const lines = formatDump(withExtra, dumpMessage(withExtra, schemas().message("csilab.rpcdemo.v1.Point"))).split("\n");
    assert.equal(lines[2], "0002  c0 3e                    tag: field 1000, wire type 0 VARINT (unknown field: kept as is)");
    assert.equal(lines[3], "0004  05                       varint 5 (as sint -3)");
  });

  it("reports bytes that are not protobuf instead of throwing", () => {
    const rows = dumpMessage(Buffer.from([0x0a, 0x05, 0x01]));
    assert.match(rows.at(-1)!.text, /^✗ .*runs past the end/);
  });
});
