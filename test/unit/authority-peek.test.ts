/**
 * The quick look at a connection's first :authority (src/server/authority-peek.ts)
 * must never disagree with a full HPACK decoder: it answers, or it says "decode".
 * Checked against hpack.js on blocks hpack.js encodes and on arbitrary bytes, and
 * on the first request a grpc-js client really sends.
 */
import { strict as assert } from "node:assert";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promises as fsp } from "node:fs";
import fc from "fast-check";
import hpack from "hpack.js";
import { connect } from "../../src/client/csi-client";
import { peekFirstAuthority } from "../../src/server/authority-peek";
import { frame, FrameReader } from "../../src/server/http2-frames";

interface Field {
  name: string;
  value: string;
  huffman: boolean;
  neverIndex: boolean;
}

function encode(fields: Field[]): Buffer {
  const c = hpack.compressor.create({ table: { maxSize: 4096 } });
  c.write(fields);
  const parts: Buffer[] = [];
  for (let b = c.read(); b !== null; b = c.read()) parts.push(b);
  return Buffer.concat(parts);
}

/** What a full decoder says: the first :authority's value, null if none; throws if undecodable. */
function decoded(block: Buffer): string | null {
  const d = hpack.decompressor.create({ table: { maxSize: 4096 } });
  d.write(block);
  d.execute();
  for (let h = d.read(); h !== null; h = d.read()) if (h.name === ":authority") return h.value;
  return null;
}

/** The peek either leaves the block to the decoder or says what it says (of a block it can decode: one it refuses, the server refuses too). */
function agreesWithDecoder(block: Buffer): void {
  const quick = peekFirstAuthority(block);
  if (quick === undefined) return;
  let full: string | null;
  try {
    full = decoded(block);
  } catch {
    return;
  }
  assert.equal(quick, full);
}

const field = (name: string, value: string, huffman = true): Field => ({ name, value, huffman, neverIndex: false });

describe("a first request's :authority, read without a decoder", () => {
  it("knows localhost Huffman-coded, as clients send it", () => {
    const block = encode([field(":method", "POST"), field(":scheme", "http"), field(":path", "/csi.v1.Identity/Probe"), field(":authority", "localhost")]);
    assert.equal(peekFirstAuthority(block), "localhost");
  });

  it("reads a value that is not Huffman-coded, a socket path included", () => {
    assert.equal(peekFirstAuthority(encode([field(":authority", "/var/lib/kubelet/plugins/x/csi.sock", false)])), "/var/lib/kubelet/plugins/x/csi.sock");
    assert.equal(peekFirstAuthority(encode([field(":method", "POST"), field(":authority", "127.0.0.1:9000", false)])), "127.0.0.1:9000");
  });

  it("leaves any other Huffman-coded value to the decoder", () => {
    assert.equal(peekFirstAuthority(encode([field(":authority", "/var/lib/kubelet/plugins/x/csi.sock")])), undefined);
  });

  it("reads the static table's own :authority entry (an empty value)", () => {
    const block = Buffer.from([0x83, 0x81]); // :method POST, :authority ""
    assert.equal(decoded(block), "");
    assert.equal(peekFirstAuthority(block), "");
  });

  it("leaves a reference to the dynamic table to the decoder", () => {
    assert.equal(peekFirstAuthority(Buffer.from([0xbe])), undefined); // index 62
  });

  it("says there is none when the block has none", () => {
    assert.equal(peekFirstAuthority(encode([field(":method", "POST"), field("content-type", "application/grpc")])), null);
  });

  it("never disagrees with hpack.js on blocks it encodes", () => {
    const names = fc.constantFrom(":authority", ":method", ":path", ":scheme", "content-type", "te", "user-agent", "x-custom", "grpc-timeout");
    const value = fc.oneof(fc.constantFrom("localhost", "localhost:80", "/run/csi/socket", "", "POST"), fc.string({ maxLength: 40 }));
    const fields = fc.array(fc.record({ name: names, value, huffman: fc.boolean(), neverIndex: fc.boolean() }), { maxLength: 12 });
    fc.assert(
      fc.property(fields, (fs) => {
        // hpack.js's encoder mis-indexes names and values such as "toString" (its table is a
        // plain object), and its decoder then refuses the block; so would the server.
        agreesWithDecoder(encode(fs));
      }),
      { numRuns: 2000 },
    );
  });

  it("never disagrees with hpack.js on arbitrary bytes, and never throws", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        agreesWithDecoder(Buffer.from(bytes));
      }),
      { numRuns: 5000 },
    );
  });

  it("answers for the first request of a grpc-js client without a decoder", async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "authority-peek-"));
    const sock = path.join(dir, "s.sock");
    const blocks: Buffer[] = [];
    const server = net.createServer((c) => {
      const reader = new FrameReader({
        preface: () => void c.write(frame(0x4, 0, 0, Buffer.alloc(0))),
        frame: () => {},
        headers: (h) => void blocks.push(h.block),
      });
      c.on("data", (chunk: Buffer) => reader.push(chunk));
      c.on("error", () => {});
    });
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    const client = connect(`unix://${sock}`);
    try {
      // The call gets no answer; its first header block is what counts.
      const call = client.identity.probe({}, { timeoutMs: 2000 }).catch(() => undefined);
      for (let i = 0; i < 200 && blocks.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(blocks.length, 1, "no HEADERS arrived");
      assert.equal(peekFirstAuthority(blocks[0]!), "localhost");
      client.close();
      await call;
    } finally {
      client.close();
      await new Promise((r) => server.close(r));
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
