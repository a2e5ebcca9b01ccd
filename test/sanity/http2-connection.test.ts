// The driver's own HTTP/2 (src/server/http2/), rule by rule (RFC 9113), in raw frames on a real
// unix socket: what it advertises, what it answers, and how it refuses a client that breaks
// the protocol — GOAWAY with the RFC's code for a connection error, RST_STREAM for a stream's.
// The gRPC server runs in this process with handlers of our own, so a test can hold a call open.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { ControllerDefinition, GetPluginInfoResponse, IdentityDefinition, ListVolumesResponse } from "../../src/gen/csi";
import { Code } from "../../src/csi/errors";
import { GrpcServer, type ServiceHandlers, type UnaryCall } from "../../src/server/grpc-server";
import { encodeWithoutIndexing, ERROR_CODE, FLAG, frame, MAX_FRAME, rstStream, SETTING, settings, TYPE, windowUpdate } from "../../src/server/http2/frames";
import { EMPTY, grpcMessage, RawClient, requestBlock } from "./h2-raw";

const INFO = "/csi.v1.Identity/GetPluginInfo";
const PROBE = "/csi.v1.Identity/Probe";
const LIST = "/csi.v1.Controller/ListVolumes";
/** A ListVolumes page of about 3 MiB: 30,000 entries with 100-byte ids. */
const BIG_PAGE: ListVolumesResponse = {
  entries: Array.from({ length: 30_000 }, (_, i) => ({ volume: { volumeId: `${String(i).padStart(8, "0")}-${"v".repeat(91)}`, capacityBytes: i } })),
};

/** Collect garbage now (node's gc(), reached without --expose-gc): what is still held afterwards is held. */
function collect(): void {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
}

function setting(id: number, value: number): Buffer {
  return settings([[id, value]]).subarray(9);
}

describe("HTTP/2, as the driver serves it", () => {
  let dir: string;
  let socketPath: string;
  let listener: net.Server;
  let grpc: GrpcServer;
  const cancelled: string[] = [];
  const held = new Map<string, UnaryCall<unknown>>();

  before(async () => {
    dir = await fsp.mkdtemp(path.join(tmpdir(), "h2-"));
    socketPath = path.join(dir, "csi.sock");
    grpc = new GrpcServer({ maxMessageBytes: 4 * 1024 * 1024 });
    const identity: ServiceHandlers = {
      getPluginInfo: (_call, cb) => cb(null, { name: "h2.test", vendorVersion: "1", manifest: {} }),
      getPluginCapabilities: (_call, cb) => cb(null, { capabilities: [] }),
      // Probe never answers: it is held until its client goes, and says when it hears.
      probe: (call, _cb) => {
        const key = String(held.size);
        held.set(key, call);
        call.on("cancelled", () => cancelled.push(key));
      },
    };
    grpc.addService(IdentityDefinition, identity);
    grpc.addService({ fullName: ControllerDefinition.fullName, methods: { listVolumes: ControllerDefinition.methods.listVolumes } }, {
      listVolumes: (_call, cb) => cb(null, BIG_PAGE),
    });
    listener = net.createServer((socket) => grpc.accept(socket));
    await new Promise<void>((resolve) => listener.listen(socketPath, resolve));
  });

  after(async () => {
    await grpc.close(1000);
    await new Promise((resolve) => listener.close(resolve));
    await fsp.rm(dir, { recursive: true, force: true });
  });

  let raw: RawClient;
  afterEach(() => raw?.close());

  const open = async (s: Buffer = EMPTY) => (raw = await RawClient.open(socketPath, s));
  const infoRequest = (id: number) => [frame(TYPE.HEADERS, FLAG.END_HEADERS, id, requestBlock(INFO)), frame(TYPE.DATA, FLAG.END_STREAM, id, grpcMessage())];
  const expectInfo = async (id: number) => {
    const a = await raw.answer(id);
    assert.equal(a.fields.get("grpc-status"), "0", a.fields.get("grpc-message"));
    assert.equal(GetPluginInfoResponse.decode(a.data.subarray(5)).name, "h2.test");
  };

  it("speaks first: SETTINGS (a stream bound, a 1 MiB stream window, a header list bound) and a larger connection window", async () => {
    await open();
    const first = await raw.until("SETTINGS", () => raw.frames[0]);
    assert.equal(first.type, TYPE.SETTINGS);
    const got = new Map<number, number>();
    for (let at = 0; at < first.payload.length; at += 6) got.set(first.payload.readUInt16BE(at), first.payload.readUInt32BE(at + 2));
    assert.deepEqual(Object.fromEntries(got), { [SETTING.MAX_CONCURRENT_STREAMS]: 256, [SETTING.INITIAL_WINDOW_SIZE]: 1 << 20, [SETTING.MAX_HEADER_LIST_SIZE]: 65536 });
    const wu = await raw.until("WINDOW_UPDATE", () => raw.frames.find((f) => f.type === TYPE.WINDOW_UPDATE && f.streamId === 0));
    assert.equal(wu.payload.readUInt32BE(0), (1 << 20) - 65535);
    await raw.until("the ACK of our SETTINGS", () => raw.frames.find((f) => f.type === TYPE.SETTINGS && f.flags & FLAG.ACK));
    raw.send(...infoRequest(1));
    await expectInfo(1);
  });

  it("answers a request in one write: HEADERS, DATA and trailers together", async () => {
    await open();
    await raw.until("SETTINGS ACK", () => raw.frames.find((f) => f.type === TYPE.SETTINGS && f.flags & FLAG.ACK));
    const writes: number[] = [];
    raw.sock.on("data", (c: Buffer) => writes.push(c.length));
    raw.send(...infoRequest(1));
    await expectInfo(1);
    assert.equal(writes.length, 1, `the answer came in ${writes.length} reads`);
  });

  const connectionErrors: [string, () => Buffer[], number][] = [
    ["bytes that are not the client preface", () => [Buffer.from("GET / HTTP/1.1\r\n\r\n")], ERROR_CODE.PROTOCOL_ERROR],
    ["a first frame other than SETTINGS", () => [frame(TYPE.PING, 0, 0, Buffer.alloc(8))], ERROR_CODE.PROTOCOL_ERROR],
  ];
  for (const [what, bytes, code] of connectionErrors) {
    it(`${what}: GOAWAY ${code}, then close`, async () => {
      const sock = net.connect(socketPath);
      raw = new RawClient(sock);
      await new Promise((r) => sock.once("connect", r));
      const [first, ...rest] = bytes();
      sock.write(what.startsWith("bytes") ? first! : Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), first!, ...rest]));
      assert.equal(await raw.goaway(), code);
    });
  }

  const afterSettings: [string, () => Buffer[], number][] = [
    ["PUSH_PROMISE from a client", () => [frame(TYPE.PUSH_PROMISE, FLAG.END_HEADERS, 1, Buffer.alloc(4))], ERROR_CODE.PROTOCOL_ERROR],
    ["a request on an even stream id", () => [frame(TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 2, requestBlock(INFO))], ERROR_CODE.PROTOCOL_ERROR],
    ["a stream id lower than the last", () => [...infoRequest(5), ...infoRequest(3)], ERROR_CODE.PROTOCOL_ERROR],
    ["a frame inside a header block", () => [frame(TYPE.HEADERS, 0, 1, requestBlock(INFO)), frame(TYPE.PING, 0, 0, Buffer.alloc(8))], ERROR_CODE.PROTOCOL_ERROR],
    ["a CONTINUATION with no header block open", () => [frame(TYPE.CONTINUATION, FLAG.END_HEADERS, 1, requestBlock(INFO))], ERROR_CODE.PROTOCOL_ERROR],
    ["a header block HPACK cannot decode", () => [frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, Buffer.from([0x80]))], ERROR_CODE.COMPRESSION_ERROR],
    ["a frame larger than MAX_FRAME_SIZE", () => [frame(TYPE.DATA, 0, 1, Buffer.alloc(MAX_FRAME + 1))], ERROR_CODE.FRAME_SIZE_ERROR],
    ["a PING of 7 bytes", () => [frame(TYPE.PING, 0, 0, Buffer.alloc(7))], ERROR_CODE.FRAME_SIZE_ERROR],
    ["DATA on a stream never opened", () => [frame(TYPE.DATA, 0, 7, Buffer.alloc(1))], ERROR_CODE.PROTOCOL_ERROR],
    // Stream 2 is even: a client never opens it, so it stays idle below stream 3 as above it (RFC 9113 §5.1).
    ["DATA on an even stream below the last one opened", () => [...infoRequest(3), frame(TYPE.DATA, 0, 2, Buffer.alloc(1))], ERROR_CODE.PROTOCOL_ERROR],
    ["RST_STREAM on an even stream below the last one opened", () => [...infoRequest(3), rstStream(2, ERROR_CODE.CANCEL)], ERROR_CODE.PROTOCOL_ERROR],
    // A wrong-size PRIORITY is a stream error, but no RST_STREAM may be sent on an idle stream (§6.4): the connection's, as Go's server makes it.
    ["a PRIORITY of 4 bytes on an idle stream", () => [frame(TYPE.PRIORITY, 0, 9, Buffer.alloc(4))], ERROR_CODE.FRAME_SIZE_ERROR],
    ["padding longer than the frame", () => [frame(TYPE.HEADERS, FLAG.END_HEADERS | FLAG.PADDED, 1, Buffer.from([200, 0x82]))], ERROR_CODE.PROTOCOL_ERROR],
    ["INITIAL_WINDOW_SIZE past 2^31-1", () => [frame(TYPE.SETTINGS, 0, 0, setting(SETTING.INITIAL_WINDOW_SIZE, 2 ** 31))], ERROR_CODE.FLOW_CONTROL_ERROR],
    ["a connection window past 2^31-1", () => [windowUpdate(0, 2 ** 31 - 1)], ERROR_CODE.FLOW_CONTROL_ERROR],
    ["MAX_FRAME_SIZE below 16384", () => [frame(TYPE.SETTINGS, 0, 0, setting(SETTING.MAX_FRAME_SIZE, 100))], ERROR_CODE.PROTOCOL_ERROR],
  ];
  for (const [what, bytes, code] of afterSettings) {
    it(`${what}: GOAWAY ${code}, then close; the server goes on`, async () => {
      await open();
      raw.send(...bytes());
      assert.equal(await raw.goaway(), code);
      await open();
      raw.send(...infoRequest(1));
      await expectInfo(1);
    });
  }

  const base: [string, string][] = [[":method", "POST"], [":scheme", "http"], [":path", INFO], [":authority", "localhost"]];
  const grpcFields: [string, string][] = [["content-type", "application/grpc"], ["te", "trailers"]];
  const malformedRequests: [string, [string, string][]][] = [
    ["an uppercase field name", [...base, ...grpcFields, ["X-Trace", "1"]]],
    ["a field name with a space", [...base, ...grpcFields, ["x trace", "1"]]],
    ["a Connection field", [...base, ...grpcFields, ["connection", "keep-alive"]]],
    ["a Keep-Alive field", [...base, ...grpcFields, ["keep-alive", "timeout=5"]]],
    ["a Transfer-Encoding field", [...base, ...grpcFields, ["transfer-encoding", "chunked"]]],
    ["te other than trailers", [...base, ["content-type", "application/grpc"], ["te", "gzip"]]],
    ["no :scheme", [base[0]!, base[2]!, base[3]!, ...grpcFields]],
    ["no :path", [base[0]!, base[1]!, base[3]!, ...grpcFields]],
    ["an empty :path", [base[0]!, base[1]!, [":path", ""], base[3]!, ...grpcFields]],
    ["no :method", [base[1]!, base[2]!, base[3]!, ...grpcFields]],
    [":path twice", [...base, [":path", "/csi.v1.Identity/Probe"], ...grpcFields]],
    ["a response's pseudo-header (:status)", [...base, [":status", "200"], ...grpcFields]],
    ["a pseudo-header after a regular field", [base[0]!, base[1]!, base[3]!, ...grpcFields, base[2]!]],
    ["a value holding CR LF", [...base, ...grpcFields, ["x-trace", "1\r\nx-admin: yes"]]],
  ];
  for (const [what, fields] of malformedRequests) {
    it(`a request with ${what} is malformed: its stream is reset (PROTOCOL_ERROR), unanswered; the connection goes on`, async () => {
      await open();
      raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, encodeWithoutIndexing(fields)), frame(TYPE.DATA, FLAG.END_STREAM, 1, grpcMessage()));
      assert.equal(await raw.reset(1), ERROR_CODE.PROTOCOL_ERROR);
      raw.send(...infoRequest(3));
      await expectInfo(3);
      assert.ok(!raw.frames.some((f) => f.type === TYPE.HEADERS && f.streamId === 1), "stream 1 was answered");
    });
  }

  it("a malformed grpc-timeout is INTERNAL, the call never run; 0 and 8 digits of any unit are deadlines", async () => {
    await open();
    let id = 1;
    for (const timeout of ["5x", "123456789S", "-1S", "1.5S", "", "10 S"]) {
      raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, id, requestBlock(INFO, [["grpc-timeout", timeout]])), frame(TYPE.DATA, FLAG.END_STREAM, id, grpcMessage()));
      const a = await raw.answer(id);
      assert.equal(a.fields.get("grpc-status"), String(Code.INTERNAL), `grpc-timeout ${JSON.stringify(timeout)}: ${a.fields.get("grpc-message")}`);
      assert.equal(a.data.length, 0, "no reply");
      id += 2;
    }
    for (const timeout of ["99999999H", "1S", "99999999n"]) {
      raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, id, requestBlock(INFO, [["grpc-timeout", timeout]])), frame(TYPE.DATA, FLAG.END_STREAM, id, grpcMessage()));
      const a = await raw.answer(id);
      assert.ok(["0", String(Code.DEADLINE_EXCEEDED)].includes(a.fields.get("grpc-status")!), `grpc-timeout ${timeout}: ${a.fields.get("grpc-message")}`);
      id += 2;
    }
  });

  it("trailers holding a pseudo-header are malformed: the stream is reset (PROTOCOL_ERROR)", async () => {
    await open();
    raw.send(
      frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, requestBlock(INFO)),
      frame(TYPE.DATA, 0, 1, grpcMessage()),
      frame(TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, encodeWithoutIndexing([[":path", "/csi.v1.Identity/Probe"]])),
    );
    assert.equal(await raw.reset(1), ERROR_CODE.PROTOCOL_ERROR);
    raw.send(...infoRequest(3));
    await expectInfo(3);
  });

  it("PING is answered with its 8 bytes; PRIORITY and unknown frame types are ignored", async () => {
    await open();
    raw.send(frame(TYPE.PING, 0, 0, Buffer.from("csi-lab!")), frame(TYPE.PRIORITY, 0, 1, Buffer.alloc(5)), frame(0xfa, 0xff, 0, Buffer.from("?")));
    const pong = await raw.until("PING ACK", () => raw.frames.find((f) => f.type === TYPE.PING));
    assert.equal(pong.flags, FLAG.ACK);
    assert.equal(pong.payload.toString(), "csi-lab!");
    raw.send(...infoRequest(1));
    await expectInfo(1);
  });

  it("HEADERS with PADDED and PRIORITY, a block continued over CONTINUATIONs, and a client's trailers are all served", async () => {
    await open();
    const block = requestBlock(INFO);
    const padded = Buffer.concat([Buffer.from([3]), Buffer.alloc(5), block, Buffer.alloc(3)]);
    raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS | FLAG.PADDED | FLAG.PRIORITY | FLAG.END_STREAM, 1, padded));
    const a = await raw.answer(1);
    assert.equal(a.fields.get("grpc-status"), String(Code.INTERNAL), "no message: a well-framed gRPC error, not an HTTP/2 one");
    raw.send(
      frame(TYPE.HEADERS, 0, 3, block.subarray(0, 10)),
      frame(TYPE.CONTINUATION, 0, 3, block.subarray(10, 20)),
      frame(TYPE.CONTINUATION, FLAG.END_HEADERS, 3, block.subarray(20)),
      frame(TYPE.DATA, FLAG.PADDED, 3, Buffer.concat([Buffer.from([4]), grpcMessage(), Buffer.alloc(4)])),
      frame(TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 3, encodeWithoutIndexing([["x-trailer", "1"]])),
    );
    await expectInfo(3);
  });

  it("old kubelets' :authority (a socket path), or none at all, is served", async () => {
    await open();
    raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, requestBlock(INFO, [], socketPath)), frame(TYPE.DATA, FLAG.END_STREAM, 1, grpcMessage()));
    await expectInfo(1);
    raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 3, requestBlock(INFO, [], null)), frame(TYPE.DATA, FLAG.END_STREAM, 3, grpcMessage()));
    await expectInfo(3);
  });

  it("streams past MAX_CONCURRENT_STREAMS are refused (REFUSED_STREAM); the open ones go on", async () => {
    await open();
    const opens: Buffer[] = [];
    for (let i = 0; i < 257; i++) opens.push(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1 + 2 * i, requestBlock(INFO)));
    raw.send(...opens);
    assert.equal(await raw.reset(1 + 2 * 256), ERROR_CODE.REFUSED_STREAM);
    raw.send(frame(TYPE.DATA, FLAG.END_STREAM, 1, grpcMessage()));
    await expectInfo(1);
  });

  it("a stream window past 2^31-1 resets that stream (FLOW_CONTROL_ERROR), not the connection", async () => {
    await open();
    raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, requestBlock(INFO)), windowUpdate(1, 2 ** 31 - 1));
    assert.equal(await raw.reset(1), ERROR_CODE.FLOW_CONTROL_ERROR);
    raw.send(...infoRequest(3));
    await expectInfo(3);
  });

  it("a client's HEADER_TABLE_SIZE below 4096 is acknowledged by a size update opening our next header block", async () => {
    await open(setting(SETTING.HEADER_TABLE_SIZE, 0));
    raw.send(...infoRequest(1));
    await expectInfo(1);
    const headers = raw.frames.filter((f) => f.type === TYPE.HEADERS);
    assert.equal(headers[0]!.payload[0], 0x20, "a size update to 0");
    assert.notEqual(headers[1]!.payload[0], 0x20, "once");
  });

  it("a multi-megabyte ListVolumes page through a 1000-byte stream window and 16 KiB frames: every byte, in order", async () => {
    await open(setting(SETTING.INITIAL_WINDOW_SIZE, 1000));
    raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, requestBlock(LIST)), frame(TYPE.DATA, FLAG.END_STREAM, 1, grpcMessage()));
    // Give the window back as DATA arrives, as a reader would.
    let given = 0;
    for (;;) {
      const got = raw.frames.filter((f) => f.type === TYPE.DATA && f.streamId === 1).reduce((n, f) => n + f.payload.length, 0);
      if (raw.frames.some((f) => f.type === TYPE.HEADERS && f.streamId === 1 && f.flags & FLAG.END_STREAM)) break;
      if (got > given) {
        raw.send(windowUpdate(1, got - given), windowUpdate(0, got - given));
        given = got;
      }
      await raw.until("more DATA", () => raw.frames.filter((f) => f.type === TYPE.DATA && f.streamId === 1).reduce((n, f) => n + f.payload.length, 0) > given || raw.frames.some((f) => f.streamId === 1 && f.flags & FLAG.END_STREAM && f.type === TYPE.HEADERS));
    }
    const data = raw.frames.filter((f) => f.type === TYPE.DATA && f.streamId === 1);
    assert.ok(data.every((f) => f.payload.length <= 1000), "no frame past the window");
    const a = await raw.answer(1);
    assert.equal(a.fields.get("grpc-status"), "0");
    const expected = ListVolumesResponse.encode(BIG_PAGE).finish();
    assert.ok(expected.length > 3_000_000, `${expected.length} bytes`);
    assert.equal(a.data.readUInt32BE(1), expected.length);
    assert.ok(a.data.subarray(5).equals(expected), "the same bytes, in order");
  });

  it("the same page to node:http2's client with a small window, and to one with a larger MAX_FRAME_SIZE", async () => {
    for (const s of [{ initialWindowSize: 700 }, { maxFrameSize: 65536 }]) {
      const session = http2.connect("http://localhost", { createConnection: () => net.connect(socketPath), settings: s });
      try {
        const { data, status } = await new Promise<{ data: Buffer<ArrayBufferLike>; status: string | undefined }>((resolve, reject) => {
          const req = session.request({ ":method": "POST", ":path": LIST, "content-type": "application/grpc", te: "trailers" });
          const parts: Buffer[] = [];
          let status: string | undefined;
          req.on("data", (c: Buffer) => parts.push(c));
          req.on("trailers", (t) => (status = String(t["grpc-status"])));
          req.on("error", reject);
          req.on("close", () => resolve({ data: Buffer.concat(parts), status }));
          req.end(grpcMessage());
        });
        assert.equal(status, "0");
        assert.ok(data.subarray(5).equals(ListVolumesResponse.encode(BIG_PAGE).finish()), JSON.stringify(s));
      } finally {
        session.close();
      }
    }
  });

  it("a PRIORITY of the wrong size on an open stream resets it (FRAME_SIZE_ERROR) and cancels its call", async () => {
    await open();
    held.clear();
    cancelled.length = 0;
    raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, requestBlock(PROBE)), frame(TYPE.DATA, FLAG.END_STREAM, 1, grpcMessage()));
    await raw.until("the Probe to be held", () => held.size > 0 || undefined);
    raw.send(frame(TYPE.PRIORITY, 0, 1, Buffer.alloc(4)));
    assert.equal(await raw.reset(1), ERROR_CODE.FRAME_SIZE_ERROR);
    await raw.until("the handler to hear of it", () => cancelled.length > 0 || undefined);
    assert.equal(held.get("0")!.outcome?.code, Code.CANCELLED);
    raw.send(...infoRequest(3));
    await expectInfo(3);
  });

  it("a client's GOAWAY (NO_ERROR): its open call is answered, a later stream refused, and our GOAWAY names the last we took", async () => {
    await open(setting(SETTING.INITIAL_WINDOW_SIZE, 1000));
    raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, requestBlock(LIST)), frame(TYPE.DATA, FLAG.END_STREAM, 1, grpcMessage()));
    await raw.until("the page's first DATA", () => raw.frames.some((f) => f.type === TYPE.DATA && f.streamId === 1));
    raw.send(frame(TYPE.GOAWAY, 0, 0, Buffer.alloc(8)), ...infoRequest(3));
    assert.equal(await raw.reset(3), ERROR_CODE.REFUSED_STREAM);
    raw.send(windowUpdate(1, 2 ** 30), windowUpdate(0, 2 ** 30));
    const a = await raw.answer(1);
    assert.equal(a.fields.get("grpc-status"), "0");
    assert.equal(await raw.goaway(), ERROR_CODE.NO_ERROR);
    const g = raw.frames.find((f) => f.type === TYPE.GOAWAY)!;
    assert.equal(g.payload.readUInt32BE(0), 1, "the last stream taken");
  });

  it("a client's RST_STREAM, its GOAWAY with an error, or its going away cancels its calls", async () => {
    for (const end of ["rst", "goaway", "close"] as const) {
      await open();
      held.clear();
      cancelled.length = 0;
      raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, requestBlock(PROBE)), frame(TYPE.DATA, FLAG.END_STREAM, 1, grpcMessage()));
      await raw.until("the Probe to be held", () => held.size > 0 || undefined);
      if (end === "rst") raw.send(frame(TYPE.RST_STREAM, 0, 1, Buffer.from([0, 0, 0, ERROR_CODE.CANCEL])));
      else if (end === "goaway") raw.send(frame(TYPE.GOAWAY, 0, 0, Buffer.from([0, 0, 0, 0, 0, 0, 0, ERROR_CODE.INTERNAL_ERROR])));
      else raw.close();
      await raw.until(`the handler to hear of it (${end})`, () => cancelled.length > 0 || undefined);
      assert.equal(held.get("0")!.outcome?.code, Code.CANCELLED);
      raw.close();
    }
  });

  it("a request body sent one byte a DATA frame holds its bytes, not every frame that carried them", async () => {
    await open();
    await raw.until("SETTINGS ACK", () => raw.frames.find((f) => f.type === TYPE.SETTINGS && f.flags & FLAG.ACK));
    // 32 KiB of message, each byte in a DATA frame of its own padded to 257 bytes: 8.4 MB on the wire, all of it
    // within the windows the driver gives back as it reads. The body stays open, so the driver keeps what it read.
    const bytes = 32 * 1024;
    const pad = Buffer.alloc(255);
    raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, requestBlock(INFO)), frame(TYPE.DATA, 0, 1, grpcMessage(Buffer.alloc(bytes)).subarray(0, 5)));
    collect();
    const before = process.memoryUsage().arrayBuffers;
    for (let sent = 0; sent < bytes; sent += 1024) {
      const frames: Buffer[] = [];
      for (let i = 0; i < 1024; i++) frames.push(frame(TYPE.DATA, FLAG.PADDED, 1, Buffer.concat([Buffer.from([255, 0]), pad])));
      // Each batch written before the next is made: what this client still holds is not counted as the driver's.
      await new Promise<void>((resolve, reject) => raw.sock.write(Buffer.concat(frames), (err) => (err ? reject(err) : resolve())));
    }
    raw.send(frame(TYPE.PING, 0, 0, Buffer.from("all read")));
    await raw.until("the PING's ACK", () => raw.frames.find((f) => f.type === TYPE.PING && f.flags & FLAG.ACK));
    // What the sockets of this process still hold on a busy machine goes a moment later; what the driver keeps for the
    // open body stays. So: measured again for up to 5 s, until it is under the bound.
    let held = Infinity;
    for (const start = Date.now(); Date.now() - start < 5000; await new Promise((r) => setTimeout(r, 50))) {
      collect();
      held = process.memoryUsage().arrayBuffers - before;
      if (held < 1024 * 1024) break;
    }
    assert.ok(held < 1024 * 1024, `${(held / 2 ** 20).toFixed(1)} MiB held for a body of ${bytes} bytes`);
    raw.send(frame(TYPE.DATA, FLAG.END_STREAM, 1, EMPTY));
    await expectInfo(1);
  });
});
