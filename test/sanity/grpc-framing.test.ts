// A request whose gRPC framing is broken is refused, never processed as if it were whole.
//
// Every gRPC message on the wire is a 5-byte prefix — a compressed flag
// (0 or 1) and a 4-byte big-endian length — followed by that many bytes.
// A unary request stream carries exactly one message and ends right after
// it. These tests send hand-made HTTP/2 DATA payloads with node:http2 to
// the real driver and read the gRPC status it answers.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { gzipSync } from "node:zlib";
import { CreateVolumeRequest } from "../../src/gen/csi";
import { encodeWithoutIndexing, ERROR_CODE, FLAG, frame as h2frame, PREFACE, rstStream, TYPE } from "../../src/server/http2/frames";
import { Code, codeName } from "../../src/csi/errors";
import { destroyDriver, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

/** A gRPC message: flag, length, bytes (the length may lie). */
function frame(body: Buffer, opts: { flag?: number; length?: number } = {}): Buffer {
  const head = Buffer.alloc(5);
  head[0] = opts.flag ?? 0;
  head.writeUInt32BE(opts.length ?? body.length, 1);
  return Buffer.concat([head, body]);
}

interface Answer {
  code: number;
  message: string;
  /** Bytes of reply messages received (a processed call answers with one). */
  replyBytes: number;
}

/** One request on its own stream: headers, then `chunks` as DATA frames, then END_STREAM. */
function call(session: http2.ClientHttp2Session, method: string, chunks: Buffer[], headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request(
      { ":method": "POST", ":path": method, "content-type": "application/grpc", te: "trailers", ...headers },
      { endStream: chunks.length === 0 },
    );
    let code: number | undefined;
    let message = "";
    let replyBytes = 0;
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) code = Number(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("data", (b: Buffer) => (replyBytes += b.length));
    req.on("error", reject);
    req.on("close", () => {
      if (code === undefined) reject(new Error(`no grpc-status (stream closed with RST code ${req.rstCode})`));
      else resolve({ code, message, replyBytes });
    });
    chunks.forEach((c, i) => (i === chunks.length - 1 ? req.end(c) : req.write(c)));
  });
}

const EMPTY = Buffer.alloc(0);
const INFO = "/csi.v1.Identity/GetPluginInfo";
const CREATE = "/csi.v1.Controller/CreateVolume";

describe("gRPC framing of requests", () => {
  let d: DriverProcess;
  let session: http2.ClientHttp2Session;
  before(async () => {
    d = await startDriver();
    session = http2.connect("http://localhost", { createConnection: () => net.connect(d.socket) });
  });
  after(async () => {
    session?.close();
    await destroyDriver(d);
  });

  const volumeCount = async () => (await d.client.controller.listVolumes({})).entries!.length;

  it("a well-formed request is answered OK, also split over several DATA frames or gzip-compressed", async () => {
    const whole = frame(EMPTY);
    assert.equal((await call(session, INFO, [whole])).code, Code.OK);
    assert.equal((await call(session, INFO, [whole.subarray(0, 2), whole.subarray(2)])).code, Code.OK);
    const body = Buffer.from(CreateVolumeRequest.encode({ name: uniqueName("framing"), volumeCapabilities: [mountCapability()] }).finish());
    const parts = frame(body);
    const ok = await call(session, CREATE, [parts.subarray(0, 3), parts.subarray(3, 9), parts.subarray(9)]);
    assert.equal(codeName(ok.code), "OK", ok.message);
    const zipped = await call(session, CREATE, [frame(gzipSync(body), { flag: 1 })], { "grpc-encoding": "gzip" });
    assert.equal(codeName(zipped.code), "OK", zipped.message);
  });

  it("a compressed request larger than 4 MiB once decompressed is RESOURCE_EXHAUSTED, as one sent uncompressed is", async () => {
    const plain = await call(session, INFO, [frame(Buffer.alloc(4 * 1024 * 1024 + 1))]);
    assert.equal(codeName(plain.code), "RESOURCE_EXHAUSTED", plain.message);
    const zipped = await call(session, INFO, [frame(gzipSync(Buffer.alloc(4 * 1024 * 1024 + 1)), { flag: 1 })], { "grpc-encoding": "gzip" });
    assert.equal(codeName(zipped.code), "RESOURCE_EXHAUSTED", zipped.message);
    assert.match(zipped.message, /larger than the 4194304 bytes a message may be/);
  });

  it("a deadline further ahead than Node's timers reach (597H, 99999999H) is a deadline, not one already passed", async () => {
    for (const timeout of ["597H", "2147484S", "99999999H"]) {
      const body = Buffer.from(CreateVolumeRequest.encode({ name: uniqueName("far-deadline"), volumeCapabilities: [mountCapability()] }).finish());
      const r = await call(session, CREATE, [frame(body)], { "grpc-timeout": timeout });
      assert.equal(codeName(r.code), "OK", `${timeout}: ${r.message}`);
    }
    assert.doesNotMatch(d.logs.join("\n"), /TimeoutOverflowWarning|Timeout duration was set to 1/);
  });

  const parameters = { capacity: "none" };
  const createBody = () =>
    Buffer.from(CreateVolumeRequest.encode({ name: uniqueName("framing"), volumeCapabilities: [mountCapability()], parameters }).finish());

  // [what, method, the DATA frames (made fresh per case), extra headers]
  const bad: [string, string, () => Buffer[], Record<string, string>][] = [
    ["the compressed flag without grpc-encoding", INFO, () => [frame(EMPTY, { flag: 1 })], {}],
    ["the compressed flag with grpc-encoding identity", INFO, () => [frame(EMPTY, { flag: 1 })], { "grpc-encoding": "identity" }],
    ["the compressed flag on a CreateVolume without grpc-encoding", CREATE, () => [frame(createBody(), { flag: 1 })], {}],
    ["a flag byte other than 0 or 1", INFO, () => [frame(EMPTY, { flag: 2 })], {}],
    ["a length prefix shorter than the bytes sent (3 bytes more)", INFO, () => [frame(Buffer.from([1, 2, 3]), { length: 0 })], {}],
    ["a length prefix that cuts a CreateVolume short (its parameters dropped)", CREATE, () => {
      const body = createBody();
      const keep = body.length - 2 - Object.entries(parameters).reduce((n, [k, v]) => n + k.length + v.length + 4, 0);
      return [frame(body, { length: keep })];
    }, {}],
    ["a length prefix longer than the bytes sent", INFO, () => [frame(EMPTY, { length: 10 })], {}],
    ["a length prefix longer than a CreateVolume sent", CREATE, () => [frame(createBody()).subarray(0, 20)], {}],
    ["two messages on a unary call", INFO, () => [frame(EMPTY), frame(EMPTY)], {}],
    ["half a prefix", INFO, () => [frame(EMPTY).subarray(0, 3)], {}],
    ["no message at all (an empty DATA frame ends the stream)", INFO, () => [EMPTY], {}],
    ["no message at all (the headers end the stream)", INFO, () => [], {}],
  ];

  for (const [what, method, chunks, headers] of bad) {
    it(`${what}: answered INTERNAL, nothing processed`, async () => {
      const before = await volumeCount();
      const a = await call(session, method, chunks(), headers);
      assert.equal(codeName(a.code), "INTERNAL", `answered ${codeName(a.code)}: ${a.message}`);
      assert.match(a.message, /framing|message/i);
      assert.equal(a.replyBytes, 0, "no reply message");
      assert.equal(await volumeCount(), before, "no volume was made");
    });
  }

  it("a request that is not gRPC at all is left to grpc-js (HTTP 415), not judged by gRPC's framing", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": INFO, "content-type": "text/plain" }, { endStream: true });
      req.on("response", (h) => resolve(Number(h[":status"])));
      req.on("error", reject);
      req.resume();
    });
    assert.equal(status, 415);
  });

  it("a client that opens and resets a stream in one write does not bring the driver down", async () => {
    // Raw bytes, as no HTTP/2 library sends them: the request's headers and its reset arrive in one read.
    const headers = (path: string) =>
      encodeWithoutIndexing([[":method", "POST"], [":scheme", "http"], [":path", path], [":authority", "localhost"], ["content-type", "application/grpc"], ["te", "trailers"]]);
    for (const path of ["/csi.v1.Identity/NoSuchMethod", INFO]) {
      const sock = net.connect(d.socket);
      await new Promise((resolve) => sock.once("connect", resolve));
      sock.write(Buffer.concat([PREFACE, h2frame(0x4, 0, 0, EMPTY), h2frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, headers(path)), rstStream(1, ERROR_CODE.CANCEL)]));
      await new Promise((r) => setTimeout(r, 200));
      sock.destroy();
    }
    assert.equal((await d.client.identity.probe({})).ready, true, "the driver still answers");
    assert.equal(d.proc.exitCode, null);
  });

  it("good and bad requests at once on one connection, also one whose :authority is a socket path, each get their own answer", async () => {
    const old = http2.connect("http://localhost", { createConnection: () => net.connect(d.socket) });
    try {
      for (const s of [session, old]) {
        const extra: Record<string, string> = s === old ? { ":authority": d.socket } : {};
        const answers = await Promise.all(
          Array.from({ length: 30 }, (_, i) => call(s, INFO, i % 3 === 0 ? [frame(EMPTY, { length: 4 })] : [frame(EMPTY)], extra)),
        );
        answers.forEach((a, i) => assert.equal(codeName(a.code), i % 3 === 0 ? "INTERNAL" : "OK", `call ${i}: ${a.message}`));
      }
    } finally {
      old.close();
    }
  });

  it("the connection stays usable after bad frames, also for many of them (flow control stays in step)", async () => {
    const big = frame(Buffer.alloc(60_000, 7), { flag: 1 });
    for (let i = 0; i < 40; i++) assert.equal((await call(session, INFO, [big])).code, Code.INTERNAL);
    assert.equal((await call(session, INFO, [frame(EMPTY)])).code, Code.OK);
    assert.equal((await d.client.identity.probe({})).ready, true);
  });
});
