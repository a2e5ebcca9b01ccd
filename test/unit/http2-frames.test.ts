// Reading HTTP/2 frames off a byte stream (src/server/http2/frames.ts): however the bytes are
// split, the same frames and header blocks come out, and each broken rule is named with its code.
import assert from "node:assert/strict";
import { ERROR_CODE, FLAG, frame, FRAME_HEADER, FrameReader, MAX_HEADER_BLOCK, PREFACE, TYPE, type H2Error } from "../../src/server/http2/frames";

const EMPTY = Buffer.alloc(0);

function read(chunks: Buffer[]): { seen: string[]; error: H2Error | undefined } {
  const seen: string[] = [];
  const reader = new FrameReader({
    frame: (type, flags, id, payload) => void seen.push(`frame ${type} ${flags} ${id} ${payload.toString("hex")}`),
    headers: (h) => void seen.push(`headers ${h.streamId} ${h.flags & FLAG.END_STREAM} ${h.block.toString()}`),
  });
  for (const c of chunks) {
    const error = reader.push(c);
    if (error) return { seen, error };
  }
  return { seen, error: undefined };
}

describe("HTTP/2 frame reader", () => {
  const stream = Buffer.concat([
    PREFACE,
    frame(TYPE.SETTINGS, 0, 0, Buffer.from("000400001000", "hex")),
    frame(TYPE.HEADERS, FLAG.PADDED | FLAG.PRIORITY, 1, Buffer.concat([Buffer.from([2]), Buffer.alloc(5), Buffer.from("abc"), Buffer.alloc(2)])),
    frame(TYPE.CONTINUATION, 0, 1, Buffer.from("def")),
    frame(TYPE.CONTINUATION, FLAG.END_HEADERS, 1, Buffer.from("ghi")),
    frame(TYPE.DATA, FLAG.END_STREAM, 1, Buffer.from("body")),
    frame(TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, Buffer.from("xyz")),
  ]);
  const expected = ["frame 4 0 0 000400001000", "headers 1 0 abcdefghi", "frame 0 1 1 626f6479", "headers 3 1 xyz"];

  it("gives the same frames and joined header blocks (padding and priority off) for every split of the bytes", () => {
    assert.deepEqual(read([stream]).seen, expected);
    for (let at = 0; at <= stream.length; at++) assert.deepEqual(read([stream.subarray(0, at), stream.subarray(at)]).seen, expected, `split at ${at}`);
    assert.deepEqual(read([...stream].map((b) => Buffer.from([b]))).seen, expected, "a byte at a time");
  });

  const broken: [string, Buffer[], number][] = [
    ["not the preface", [Buffer.from("PRI * HTTP/1.1")], ERROR_CODE.PROTOCOL_ERROR],
    ["a frame past 16 KiB", [PREFACE, frame(TYPE.DATA, 0, 1, Buffer.alloc(16385))], ERROR_CODE.FRAME_SIZE_ERROR],
    ["HEADERS on stream 0", [PREFACE, frame(TYPE.HEADERS, FLAG.END_HEADERS, 0, Buffer.from("a"))], ERROR_CODE.PROTOCOL_ERROR],
    ["a frame inside a header block", [PREFACE, frame(TYPE.HEADERS, 0, 1, Buffer.from("a")), frame(TYPE.DATA, 0, 1, Buffer.from("b"))], ERROR_CODE.PROTOCOL_ERROR],
    ["a CONTINUATION of another stream", [PREFACE, frame(TYPE.HEADERS, 0, 1, Buffer.from("a")), frame(TYPE.CONTINUATION, FLAG.END_HEADERS, 3, Buffer.from("b"))], ERROR_CODE.PROTOCOL_ERROR],
    ["a CONTINUATION alone", [PREFACE, frame(TYPE.CONTINUATION, FLAG.END_HEADERS, 1, Buffer.from("b"))], ERROR_CODE.PROTOCOL_ERROR],
    ["padding past the payload", [PREFACE, frame(TYPE.HEADERS, FLAG.END_HEADERS | FLAG.PADDED, 1, Buffer.from([5, 1]))], ERROR_CODE.PROTOCOL_ERROR],
    ["a header block past MAX_HEADER_BLOCK", [PREFACE, frame(TYPE.HEADERS, 0, 1, Buffer.alloc(16384)), ...Array.from({ length: MAX_HEADER_BLOCK / 16384 }, () => frame(TYPE.CONTINUATION, 0, 1, Buffer.alloc(16384)))], ERROR_CODE.ENHANCE_YOUR_CALM],
    [
      "a header block of empty CONTINUATIONs that never ends",
      [PREFACE, frame(TYPE.HEADERS, 0, 1, Buffer.from("a")), ...Array.from({ length: MAX_HEADER_BLOCK / FRAME_HEADER }, () => frame(TYPE.CONTINUATION, 0, 1, EMPTY))],
      ERROR_CODE.ENHANCE_YOUR_CALM,
    ],
  ];
  for (const [what, chunks, code] of broken) {
    it(`names ${what}`, () => assert.equal(read(chunks).error?.code, code));
  }
});
