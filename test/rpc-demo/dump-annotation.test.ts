// The annotated dump shows every byte once, at its offset: tag, length
// prefix, payload, nesting — with the schema by field name and type, without
// it from the wire alone — and for bytes that are not protobuf, where the
// reading failed and what was expected there.
import assert from "node:assert/strict";
import { Sample } from "../../src/gen/rpc-demo";
import { dumpError, dumpMessage, formatDump, parseHex } from "../../src/rpc-demo/codecs/dump";
import { schemas } from "../../src/rpc-demo/codecs/schema";
import { assertTiles } from "./reference";

const bytes = Buffer.from(Sample.encode({ i32: 150, s64: -2n, text: "hi", point: { x: 1 }, numbers: [1, 300], id: 7n }).finish());
const sampleSchema = schemas().message("csilab.rpcdemo.v1.Sample");

const dumpOf = (hex: string) => formatDump(parseHex(hex), dumpMessage(parseHex(hex))).split("\n");

describe("annotated protobuf dump", () => {
  it("with the schema, labels each range with field, wire type and typed value", () => {
    const lines = formatDump(bytes, dumpMessage(bytes, sampleSchema)).split("\n");
    assert.deepEqual(lines.slice(0, 8), [
      "0000  08                       tag: field 1 i32, wire type 0 VARINT (int32)",
      "0001  96 01                    int32 150",
      "0003  30                       tag: field 6 s64, wire type 0 VARINT (sint64)",
      "0004  03                       sint64 -2 (zigzag 3)",
      "0005  72                       tag: field 14 text, wire type 2 LEN (string)",
      "0006  02                       length 2",
      '0007  68 69                      "hi" (UTF-8)',
      "0009  8a 01                    tag: field 17 point, wire type 2 LEN (Point)",
    ]);
    assert.ok(lines.includes("000b  02                       length 2"), "the nested message's length prefix has its own row");
    assert.ok(lines.includes("000c  08                         tag: field 1 x, wire type 0 VARINT (int32)"), "nested fields are indented");
    assert.ok(lines.includes("0010  03                       length 3"), "so has the packed list's");
    assert.ok(lines.includes("0011  01                         int32 1"), "packed elements are listed one by one");
    assert.ok(lines.includes("0012  ac 02                      int32 300"));
    assert.ok(lines.includes("0014  e0 12                    tag: field 300 id, wire type 0 VARINT (int64)"), "a two-byte tag");
  });

  it("covers every byte exactly once, with and without the schema", () => {
    assertTiles(dumpMessage(bytes, sampleSchema), bytes.length);
    assertTiles(dumpMessage(bytes), bytes.length);
  });

  it("shows 64-bit values exactly, at both ends of their range", () => {
    const extremes = Buffer.from(Sample.encode({ i64: -(2n ** 63n), u64: 2n ** 64n - 1n, s64: 2n ** 63n - 1n, f64: 2n ** 64n - 1n, sf64: -(2n ** 63n) }).finish());
    const text = formatDump(extremes, dumpMessage(extremes, sampleSchema));
    assert.match(text, /int64 -9223372036854775808\n/);
    assert.match(text, /uint64 18446744073709551615\n/);
    assert.match(text, /sint64 9223372036854775807 \(zigzag 18446744073709551614\)/);
    assert.match(text, /fixed64 18446744073709551615 /);
    assert.match(text, /sfixed64 -9223372036854775808 /);
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

  it("a length that runs past the end: the length byte at its own offset, and the error names that offset", () => {
    const rows = dumpMessage(parseHex("0a04646174611a0a08800210"));
    assert.deepEqual(formatDump(parseHex("0a04646174611a0a08800210"), rows).split("\n"), [
      "0000  0a                       tag: field 1, wire type 2 LEN",
      "0001  04                       length 4",
      '0002  64 61 74 61                "data" (looks like UTF-8 text)',
      "0006  1a                       tag: field 3, wire type 2 LEN",
      "0007  0a                       ✗ at offset 7: length 10 of field 3, but only 4 bytes follow before the end of the message at offset 12 (0xc)",
      "0008  08 80 02 10              ✗ not read: 4 bytes after the error",
    ]);
    assert.match(dumpError(rows)!, /^at offset 7: length 10 of field 3/);
  });

  it("other malformed input: the true offset and what was expected there", () => {
    assert.deepEqual(dumpOf("0896"), [
      "0000  08                       tag: field 1, wire type 0 VARINT",
      "0001  96                       ✗ at offset 1: expected the value of field 1 (a varint): its last byte has the top bit set (more follows), but nothing does",
    ]);
    assert.match(dumpOf("0b01")[0]!, /^0000  0b +✗ at offset 0: tag of field 1 with wire type 3 SGROUP: proto2's groups/);
    assert.match(dumpOf("0001")[0]!, /^0000  00 +✗ at offset 0: field number 0: not a valid tag/);
    assert.match(dumpOf("0d0102")[1]!, /^0001  01 02 +✗ at offset 1: expected the value of field 1 \(I32\): 4 bytes, but only 2 are left before offset 3/);
    assert.match(dumpOf("08ffffffffffffffffffff01")[1]!, /✗ at offset 1: expected the value of field 1 \(a varint\): a varint is at most 10 bytes long/);
    // Inside a nested message, its own length is the limit, not the end of the bytes.
    const nested = parseHex("8a 01 02 08 96 01");
    const lines = formatDump(nested, dumpMessage(nested, sampleSchema)).split("\n");
    assert.equal(lines[3], "0004  96                         ✗ at offset 4: expected the value of field 1 (x) (a varint): its last byte has the top bit set (more follows), but nothing does");
    assert.equal(lines[4], "0005  01                       ✗ not read: 1 byte after the error");
    for (const hex of ["0896", "0b01", "0001", "0d0102", "8a01020896 01", "0a04646174611a0a08800210"]) assertTiles(dumpMessage(parseHex(hex)), parseHex(hex).length);
  });

  it("hex input: separators are fine, anything else is an error", () => {
    assert.deepEqual(parseHex("08 96 01"), Buffer.from([8, 0x96, 1]));
    assert.deepEqual(parseHex("0x08,0x96:01\n"), Buffer.from([8, 0x96, 1]));
    assert.throws(() => parseHex("zz"), /not hex: "z"/);
    assert.throws(() => parseHex("08 9g"), /not hex: "g"/);
    assert.throws(() => parseHex("089"), /odd number of digits/);
    assert.throws(() => parseHex("  "), /no bytes given/);
  });
});
