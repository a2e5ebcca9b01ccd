// HPACK decoding (src/server/http2/hpack.ts, huffman.ts): the RFC's own examples, blocks
// hpack.js's encoder makes from random headers, and every way a block can be broken.
import assert from "node:assert/strict";
import fc from "fast-check";
import hpack from "hpack.js";
import { HpackDecoder, HpackError, type HeaderField } from "../../src/server/http2/hpack";
import { huffmanCodes, huffmanDecode, HuffmanError } from "../../src/server/http2/huffman";

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

/** hpack.js's table of the RFC's codes: [length, code] per symbol. */
const RFC_CODES = (require("hpack.js/lib/hpack/huffman.js") as { encode: [number, number][] }).encode;

/** A string's Huffman code, from the RFC's table, padded with ones. */
function huffmanEncode(s: string): Buffer {
  let bits = "";
  for (const c of Buffer.from(s, "latin1")) bits += RFC_CODES[c]![1].toString(2).padStart(RFC_CODES[c]![0], "0");
  bits += "1".repeat((8 - (bits.length % 8)) % 8);
  return Buffer.from(bits.match(/.{8}/g)?.map((b) => parseInt(b, 2)) ?? []);
}

/** Strings of any byte values, as HTTP/2 header values are octets (latin1 here). */
const octets = (max: number) => fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: max }).map((a) => Buffer.from(a).toString("latin1"));

describe("HPACK's Huffman code", () => {
  it("is canonical: the 257 code lengths give every code of RFC 7541's appendix B", () => {
    const codes = huffmanCodes();
    assert.equal(codes.length, 257);
    codes.forEach(([code, len], sym) => assert.deepEqual([len, code], RFC_CODES[sym], `symbol ${sym}`));
  });

  it("decodes what the RFC's code encodes, for any bytes", () => {
    fc.assert(fc.property(octets(300), (s) => assert.equal(huffmanDecode(huffmanEncode(s)), s)), { numRuns: 500 });
  });

  it("refuses padding longer than 7 bits, padding with a zero bit, and EOS", () => {
    const good = hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"); // "www.example.com" (RFC 7541 C.4.1)
    assert.equal(huffmanDecode(good), "www.example.com");
    const zeroPad = Buffer.from(good);
    zeroPad[zeroPad.length - 1]! &= 0xfe;
    assert.throws(() => huffmanDecode(zeroPad), HuffmanError);
    assert.throws(() => huffmanDecode(Buffer.concat([good, Buffer.from([0xff])])), /padding/);
    assert.throws(() => huffmanDecode(hex("ffff ffff")), /EOS/);
    assert.equal(huffmanDecode(Buffer.alloc(0)), "");
  });
});

describe("HPACK decoding", () => {
  it("reads RFC 7541's C.4 requests, the dynamic table carried from block to block", () => {
    const d = new HpackDecoder();
    assert.deepEqual(d.decode(hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")).fields, [
      [":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"],
    ]);
    assert.equal(d.tableSize, 57);
    assert.deepEqual(d.decode(hex("8286 84be 5886 a8eb 1064 9cbf")).fields[4], ["cache-control", "no-cache"]);
    assert.equal(d.tableSize, 110);
    const third = d.decode(hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")).fields;
    assert.deepEqual(third, [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [":authority", "www.example.com"], ["custom-key", "custom-value"]]);
    assert.equal(d.tableSize, 164);
  });

  it("reads RFC 7541's C.6 responses in a 256-byte table, evicting the oldest entries", () => {
    const d = new HpackDecoder();
    d.decode(hex("3fe1 01")); // a size update to 256 (the examples' table size)
    const date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    const first = d.decode(hex("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"));
    assert.deepEqual(first.fields, [[":status", "302"], ["cache-control", "private"], ["date", date1], ["location", "https://www.example.com"]]);
    assert.equal(d.tableSize, 222);
    assert.deepEqual(d.decode(hex("4883 640e ffc1 c0bf")).fields[0], [":status", "307"]);
    assert.equal(d.tableSize, 222, ":status 302 was evicted for 307");
    const third = d.decode(hex(
      "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    )).fields;
    assert.deepEqual(third, [
      [":status", "200"], ["cache-control", "private"], ["date", "Mon, 21 Oct 2013 20:13:22 GMT"], ["location", "https://www.example.com"],
      ["content-encoding", "gzip"], ["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"],
    ]);
    assert.equal(d.tableSize, 215);
    assert.deepEqual(d.table.map(([n]) => n), ["set-cookie", "content-encoding", "date"]);
  });

  it("decodes hpack.js's blocks of random headers, indexed or not, Huffman-coded or not, across size updates", () => {
    const field = fc.record({
      name: fc.oneof(fc.constantFrom(":path", "content-type", "grpc-timeout", "user-agent", "x-a"), octets(40)),
      value: octets(200),
      huffman: fc.boolean(),
      neverIndex: fc.boolean(),
    });
    const step = fc.oneof({ weight: 6, arbitrary: fc.array(field, { minLength: 1, maxLength: 12 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 4096 }) });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 30 }), (steps) => {
        const enc = hpack.compressor.create({ table: { maxSize: 4096 } });
        const dec = new HpackDecoder(4096);
        let size: number | undefined;
        for (const s of steps) {
          if (typeof s === "number") {
            size = s; // an update opens the next block
            continue;
          }
          if (size !== undefined) enc.updateTableSize(size);
          size = undefined;
          enc.write(s.map((f) => ({ ...f })));
          const parts: Buffer[] = [];
          for (let b = enc.read() as Buffer | null; b !== null; b = enc.read() as Buffer | null) parts.push(b);
          const got = dec.decode(Buffer.concat(parts)).fields;
          assert.deepEqual(got, s.map((f): HeaderField => [f.name, f.value]));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("an entry larger than the whole table empties it and is not kept; a size update evicts what no longer fits", () => {
    const d = new HpackDecoder();
    const literal = (name: string, value: string) => Buffer.from([0x40, name.length, ...Buffer.from(name), value.length, ...Buffer.from(value)]);
    d.decode(Buffer.concat([literal("a", "1"), literal("b", "2"), literal("c", "3")]));
    assert.deepEqual(d.table, [["c", "3"], ["b", "2"], ["a", "1"]]);
    assert.equal(d.tableSize, 3 * 34);
    d.decode(Buffer.from([0x20 | 31, 69 - 31])); // size update to 69: two entries fit
    assert.deepEqual(d.table, [["c", "3"], ["b", "2"]]);
    assert.deepEqual(d.decode(Buffer.from([0x80 | 62, 0x80 | 63])).fields, [["c", "3"], ["b", "2"]]);
    d.decode(literal("big", "x".repeat(40)));
    assert.deepEqual(d.table, [], "too large for 69 bytes: the table is emptied and the entry not added");
    assert.throws(() => d.decode(Buffer.from([0x80 | 62])), /past the dynamic table/);
  });

  it("stops collecting fields past the list limit but keeps decoding, so the table stays in step", () => {
    const d = new HpackDecoder();
    // "a: bbb…" (100 bytes) added to the table, then :method GET.
    const block = Buffer.concat([Buffer.from([0x40, 1, 0x61, 100]), Buffer.alloc(100, 0x62), Buffer.from([0x82])]);
    const r = d.decode(block, 50);
    assert.equal(r.tooLarge, true);
    assert.deepEqual(r.fields, []);
    assert.equal(d.table.length, 1, "the literal with indexing was still added");
  });

  const broken: [string, string, RegExp][] = [
    ["an indexed field 0", "80", /index 0/],
    ["an index past the tables", "be", /past the dynamic table/],
    ["a size update past what we allow", "3fe2 1f", /past the 4096/],
    ["a size update after a field", "82 20", /after a header field/],
    ["an integer cut short", "ff", /inside an integer/],
    ["an integer of 5 continuation bytes", "ff ff ff ff ff 0f", /continuation bytes/],
    ["a string past the end of the block", "00 05 61", /runs past the end/],
    ["a literal with no value", "40 01 61", /where a string should start/],
    ["a Huffman string with zero padding", "00 01 61 81 f0", /not all ones/],
    ["a Huffman string holding EOS", "00 01 61 84 ff ff ff ff", /EOS/],
  ];
  for (const [what, bytes, message] of broken) {
    it(`refuses ${what}`, () => assert.throws(() => new HpackDecoder().decode(hex(bytes)), (e: unknown) => e instanceof HpackError && message.test(e.message)));
  }
});
