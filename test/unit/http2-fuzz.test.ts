// Whatever bytes a client sends, the driver's HTTP/2 (src/server/http2/) never throws, never
// holds more than a bounded amount, and either answers in well-formed frames or ends the
// connection with GOAWAY. The connection is fed through a Duplex (GrpcServer.accept takes
// any), so thousands of byte streams run in a second, each split into reads at random points.
import assert from "node:assert/strict";
import { Duplex } from "node:stream";
import fc from "fast-check";
import { IdentityDefinition } from "../../src/gen/csi";
import { GrpcServer } from "../../src/server/grpc-server";
import { ERROR_CODE, FLAG, frame, PREFACE, TYPE, windowUpdate } from "../../src/server/http2/frames";
import { HpackDecoder } from "../../src/server/http2/hpack";
import { grpcMessage, requestBlock } from "../sanity/h2-raw";

/** A client's end of a connection: what the server writes is kept. */
class Pipe extends Duplex {
  readonly written: Buffer[] = [];
  ended = false;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.written.push(chunk);
    cb();
  }
  override _final(cb: () => void): void {
    this.ended = true;
    cb();
  }
}

function server(): GrpcServer {
  const grpc = new GrpcServer({ maxMessageBytes: 4 * 1024 * 1024 });
  grpc.addService(IdentityDefinition, {
    getPluginInfo: (_c, cb) => cb(null, { name: "fuzz", vendorVersion: "1", manifest: {} }),
    getPluginCapabilities: (_c, cb) => cb(null, { capabilities: [] }),
    probe: (_c, cb) => cb(null, { ready: true }),
  });
  return grpc;
}

/** The frames in what the server wrote; throws if they do not parse whole. */
function framesOf(bytes: Buffer): { type: number; flags: number; streamId: number; payload: Buffer }[] {
  const out = [];
  let at = 0;
  while (at < bytes.length) {
    assert.ok(bytes.length - at >= 9, "a whole frame header");
    const len = bytes.readUIntBE(at, 3);
    assert.ok(len <= 16384, `a frame of ${len} bytes`);
    assert.ok(bytes.length - at - 9 >= len, "a whole frame");
    out.push({ type: bytes[at + 3]!, flags: bytes[at + 4]!, streamId: bytes.readUInt32BE(at + 5), payload: bytes.subarray(at + 9, at + 9 + len) });
    at += 9 + len;
  }
  return out;
}

const SETTINGS = frame(TYPE.SETTINGS, 0, 0, Buffer.alloc(0));
const request = (id: number) => [frame(TYPE.HEADERS, FLAG.END_HEADERS, id, requestBlock("/csi.v1.Identity/GetPluginInfo")), frame(TYPE.DATA, FLAG.END_STREAM, id, grpcMessage())];

/** Frames of every type, some well-formed requests among them. */
const anyFrame = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 20 }).map((n) => Buffer.concat(request(2 * n + 1))) },
  {
    weight: 5,
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: 11 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 9 }), fc.uint8Array({ maxLength: 64 }))
      .map(([type, flags, id, payload]) => frame(type, flags, id, Buffer.from(payload))),
  },
);

/** A byte stream: the preface and SETTINGS, frames, then a few bytes flipped, cut or inserted. */
const byteStream = fc
  .tuple(
    fc.array(anyFrame, { maxLength: 25 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    fc.option(fc.nat(), { nil: undefined }),
  )
  .map(([frames, flips, cut]) => {
    const bytes = Buffer.concat([PREFACE, SETTINGS, ...frames]);
    for (const [at, value] of flips) bytes[at % bytes.length] = value;
    return cut === undefined ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
  });

describe("HTTP/2 under random and broken bytes", () => {
  it("never throws, stays bounded, and ends in valid answers or GOAWAY", async () => {
    await fc.assert(
      fc.asyncProperty(byteStream, fc.array(fc.nat(), { maxLength: 6 }), async (bytes, cuts) => {
        const grpc = server();
        const pipe = new Pipe();
        grpc.accept(pipe);
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        let from = 0;
        for (const to of [...points, bytes.length]) {
          if (to > from) pipe.push(bytes.subarray(from, to));
          from = to;
        }
        await new Promise((r) => setImmediate(r));
        const out = Buffer.concat(pipe.written);
        const frames = framesOf(out);
        assert.ok(out.length < 64 * 1024 + 100 * bytes.length, `${out.length} bytes written for ${bytes.length} read`);
        assert.equal(frames[0]?.type, TYPE.SETTINGS, "our SETTINGS first");
        if (pipe.ended) assert.equal(frames.at(-1)?.type, TYPE.GOAWAY, "a connection we end, we end with GOAWAY");
        assert.ok(grpc.callsInFlight <= 20);
        await grpc.close(0);
      }),
      { numRuns: 1500 },
    );
  });

  it("DATA past the connection's window, in one read, is FLOW_CONTROL_ERROR", async () => {
    const grpc = server();
    const pipe = new Pipe();
    grpc.accept(pipe);
    const chunk = Buffer.alloc(16384);
    const data = Array.from({ length: 65 }, () => frame(TYPE.DATA, 0, 1, chunk)); // 65 × 16 KiB: past 1 MiB
    pipe.push(Buffer.concat([PREFACE, SETTINGS, frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, requestBlock("/csi.v1.Identity/GetPluginInfo")), windowUpdate(1, 1), ...data]));
    await new Promise((r) => setImmediate(r));
    const last = framesOf(Buffer.concat(pipe.written)).at(-1)!;
    assert.equal(last.type, TYPE.GOAWAY);
    assert.equal(last.payload.readUInt32BE(4), ERROR_CODE.FLOW_CONTROL_ERROR);
    await grpc.close(0);
  });
});

/** A client that does not read: what the server writes stays in its socket until `catchUp()`. */
class DeafPipe extends Duplex {
  private waiting: (() => void) | undefined;
  private reading = false;
  readonly written: Buffer[] = [];
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.written.push(chunk);
    if (this.reading) cb();
    else this.waiting = cb;
  }
  /** The client reads at last, and from now on: every write completes. */
  catchUp(): void {
    this.reading = true;
    const cb = this.waiting;
    this.waiting = undefined;
    cb?.();
  }
}

describe("HTTP/2 against a client that sends and never reads", () => {
  it("stops reading it once 1 MiB of our output waits, and reads on when it has been read", async () => {
    const grpc = server();
    const pipe = new DeafPipe();
    grpc.accept(pipe);
    // 64 KiB reads of PINGs: each asks for an ACK of the same size, which no window bounds.
    const ping = frame(TYPE.PING, 0, 0, Buffer.alloc(8));
    const perRead = Math.floor(65536 / ping.length);
    const reads = 48; // 3 MiB of PINGs, 3 MiB of ACKs asked for
    pipe.push(Buffer.concat([PREFACE, SETTINGS]));
    for (let i = 0; i < reads; i++) pipe.push(Buffer.concat(Array.from({ length: perRead }, () => ping)));
    await new Promise((r) => setImmediate(r));
    assert.ok(pipe.isPaused(), "the server stopped reading");
    assert.ok(pipe.writableLength <= 1024 * 1024 + 2 * 65536, `${pipe.writableLength} bytes wait in the socket`);
    // The client reads from now on: every PING is answered.
    pipe.catchUp();
    for (let i = 0; i < 100 && (pipe.readableLength > 0 || pipe.writableLength > 0); i++) await new Promise((r) => setImmediate(r));
    const acks = framesOf(Buffer.concat(pipe.written)).filter((f) => f.type === TYPE.PING && f.flags & FLAG.ACK).length;
    assert.equal(acks, reads * perRead);
    await grpc.close(0);
  });
});

describe("A handler that throws instead of answering", () => {
  it("is answered INTERNAL with no stack trace, the throw goes no further, and the connection serves on", async () => {
    const threw: unknown[] = [];
    const grpc = new GrpcServer({ maxMessageBytes: 1024, onHandlerThrew: (e) => threw.push(e) });
    let calls = 0;
    grpc.addService(IdentityDefinition, {
      getPluginInfo: (_c, cb) => {
        if (++calls === 1) throw new Error("a bug in a handler");
        cb(null, { name: "after", vendorVersion: "1", manifest: {} });
      },
      getPluginCapabilities: (_c, cb) => cb(null, { capabilities: [] }),
      probe: (_c, cb) => cb(null, { ready: true }),
    });
    const pipe = new Pipe();
    grpc.accept(pipe);
    pipe.push(Buffer.concat([PREFACE, SETTINGS, ...request(1), ...request(3)]));
    await new Promise((r) => setImmediate(r));
    const frames = framesOf(Buffer.concat(pipe.written));
    const hpack = new HpackDecoder();
    const fieldsOn = (id: number) => new Map(frames.filter((f) => f.streamId === id && f.type === TYPE.HEADERS).flatMap((f) => hpack.decode(f.payload).fields));
    const first = fieldsOn(1);
    assert.equal(first.get("grpc-status"), "13");
    assert.match(first.get("grpc-message") ?? "", /^the driver failed while handling the call/);
    assert.doesNotMatch(first.get("grpc-message") ?? "", /a bug|at /);
    assert.equal((threw[0] as Error).message, "a bug in a handler");
    assert.equal(fieldsOn(3).get("grpc-status"), "0");
    assert.equal(grpc.callsInFlight, 0);
    await grpc.close(0);
  });
});
