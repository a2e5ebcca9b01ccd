// The walkthrough as data (walkthrough/story.ts): what the lab page draws
// comes from the same engine as the terminal's narration — the dump's own
// offsets, the transports' own frame segments, HTTP/2 frames read off the wire.
import assert from "node:assert/strict";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { dumpMessage } from "../../src/rpc-demo/codecs/dump";
import { schemas } from "../../src/rpc-demo/codecs/schema";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { parseFaults } from "../../src/rpc-demo/faults/faults";
import { hpackRepresentations } from "../../src/rpc-demo/transports/http2-wire";
import type { TransportName } from "../../src/rpc-demo/transports/transport";
import { callStory, type CallStory, type Span } from "../../src/rpc-demo/walkthrough/story";
import { runWalkthrough } from "../../src/rpc-demo/walkthrough/walkthrough";

async function story(transport: TransportName, fault?: string, method: "add" | "increment" = "add"): Promise<CallStory> {
  const run = await runWalkthrough({ transport, codec: protobufCodec, faults: parseFaults(fault), method, request: undefined, timeoutMs: 2000 });
  return callStory(run);
}

/** Frame spans cover the bytes exactly once, in order. */
function assertTiles(spans: readonly Span[], bytes: number): void {
  let at = 0;
  for (const s of spans.filter((x) => x.level === "frame")) {
    assert.equal(s.offset, at, `span "${s.label}" starts where the one before ended`);
    at += s.length;
  }
  assert.equal(at, bytes);
}

describe("the walkthrough as data (the lab page's view)", () => {
  it("every dump row says what it is (tag, length, value) and which field it belongs to", () => {
    const type = Playground.echo.request.fullName;
    const bytes = protobufCodec.encode(Playground.echo.request, { text: "hi", point: { x: 1, y: -1 } } as never);
    const rows = dumpMessage(bytes, schemas().message(type));
    for (const r of rows) assert.ok(r.field && r.offset >= r.field.offset && r.offset + r.length <= r.field.offset + r.field.length, JSON.stringify(r));
    assert.deepEqual([...new Set(rows.map((r) => r.kind))].sort(), ["length", "tag", "value"]);
    const nested = rows.find((r) => / -1\b/.test(r.text))!;
    assert.ok(nested.field!.length < bytes.length, "a nested field's extent is its own, not its parent's");
  });

  for (const transport of ["tcp", "udp", "http2"] as TransportName[]) {
    it(`over ${transport}: the request's bytes carry the codec's own offsets inside the frame`, async () => {
      const s = await story(transport);
      const encoded = s.steps.find((x) => x.layer === "codec" && x.bytes)!;
      const req = Buffer.from(encoded.bytes!.hex, "hex");
      const rows = dumpMessage(req, schemas().message("csilab.rpcdemo.v1.AddRequest"));
      // Every client step that carries the request inside a frame: the framing step, and over HTTP/2 the bytes on the wire.
      const framed = s.steps.filter((x) => x.side === "client" && x.layer !== "codec" && x.bytes?.spans.some((sp) => sp.kind === "message" && Buffer.from(x.bytes!.hex, "hex").subarray(sp.offset, sp.offset + sp.length).equals(req)));
      assert.ok(framed.length >= (transport === "http2" ? 2 : 1), "the encoded request sits inside the frame");
      for (const step of framed) {
        const data = Buffer.from(step.bytes!.hex, "hex");
        assertTiles(step.bytes!.spans, data.length);
        const at = step.bytes!.spans.find((sp) => sp.level === "frame" && sp.kind === "message" && data.subarray(sp.offset, sp.offset + sp.length).equals(req))!;
        const inner = step.bytes!.spans.filter((sp) => sp.level === "message");
        assert.deepEqual(
          inner.map((sp) => [sp.offset - at.offset, sp.length, sp.label]),
          rows.map((r) => [r.offset, r.length, r.text]),
        );
      }
      assert.deepEqual(s.result, { sum: "42" });
    });
  }

  it("over HTTP/2 the wire shows the preface, 9-byte frame headers, HPACK headers and the 5-byte gRPC prefix", async () => {
    const s = await story("http2");
    const spans = s.steps.flatMap((x) => x.bytes?.spans ?? []);
    assert.ok(spans.some((sp) => sp.kind === "preface" && sp.length === 24));
    const head = spans.filter((sp) => sp.kind === "frame-header");
    assert.ok(head.length >= 8 && head.some((sp) => /frame type 1 = HEADERS/.test(sp.label)));
    assert.ok(spans.some((sp) => sp.kind === "hpack" && /:path: \/csilab\.rpcdemo\.v1\.Playground\/Add/.test(sp.label)));
    assert.ok(spans.some((sp) => sp.kind === "hpack" && /grpc-status: 0/.test(sp.label)), "the trailers, decoded");
    assert.ok(spans.some((sp) => sp.kind === "grpc-prefix" && /message length 4/.test(sp.label)));
  });

  it("HPACK representations are found by their first bits (RFC 7541, C.3.1)", () => {
    const block = Buffer.from("828684410f7777772e6578616d706c652e636f6d", "hex");
    assert.deepEqual(
      hpackRepresentations(block).map((r) => [r.length, r.form]),
      [[1, "indexed"], [1, "indexed"], [1, "indexed"], [17, "literal"]],
    );
  });

  it("an HPACK literal says which of its strings is Huffman-coded: each has its own H bit (RFC 7541 §5.2)", () => {
    const describe = (hex: string) => hpackRepresentations(Buffer.from(hex, "hex")).map((r) => r.describe);
    // C.3.1's :authority: name from the table, value "www.example.com" in plain text (H = 0)
    assert.deepEqual(describe("410f7777772e6578616d706c652e636f6d"), ["literal, added to the table, name from index 1, value plain"]);
    // grpc-status: 0 as nghttp2 sends it: the name Huffman-coded (0x88), the value "0" plain (0x01 0x30)
    assert.deepEqual(describe("40889acac8b21234da8f0130"), ["literal, added to the table, new name, name Huffman-coded, value plain"]);
    // te: trailers: the name plain (0x02 "te"), the value Huffman-coded (0x86)
    assert.deepEqual(describe("4002746586 4d833505b11f".replace(" ", "")), ["literal, added to the table, new name, name plain, value Huffman-coded"]);
  });

  it("a fault story marks the loss, the resend and how often the server ran the call", async () => {
    const s = await story("udp", "drop", "increment");
    const events = s.steps.map((x) => x.event).filter(Boolean);
    assert.deepEqual(events.slice(0, 3), ["send", "lost", "retransmit"]);
    assert.ok(events.includes("cached-reply"));
    assert.equal(s.runs, 1);
    assert.ok(s.perLayer.some((l) => l.layer === "transport") && s.totalMs > 0);
  });
});
