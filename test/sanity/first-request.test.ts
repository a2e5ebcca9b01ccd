// A connection's first request (src/server/http2/connection.ts): the driver speaks first (its
// SETTINGS), answers PINGs, and serves requests sent before the client has seen its SETTINGS.
// These tests speak raw HTTP/2 bytes, in the orders real clients use and others.
import assert from "node:assert/strict";
import type { Socket } from "node:net";
import { ProbeResponse } from "../../src/gen/csi";
import { encodeWithoutIndexing, FLAG, frame, PREFACE, TYPE } from "../../src/server/http2/frames";
import { RawClient } from "./h2-raw";
import { destroyDriver, startDriver, type DriverProcess } from "./harness";

const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const ACK = 0x1;

function probeRequest(streamId: number, authority = "localhost"): Buffer {
  const block = encodeWithoutIndexing([
    [":method", "POST"],
    [":scheme", "http"],
    [":path", "/csi.v1.Identity/Probe"],
    [":authority", authority],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
  ]);
  return Buffer.concat([frame(TYPE.HEADERS, FLAG.END_HEADERS, streamId, block), frame(TYPE.DATA, FLAG.END_STREAM, streamId, Buffer.alloc(5))]);
}

/** The socket can take more, or it closed: whichever comes first; neither listener is left behind. */
function drainedOrClosed(sock: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off("drain", done).off("close", done);
      resolve();
    };
    sock.once("drain", done).once("close", done);
  });
}

/** The Probe's answer on `streamId`: its reply message, once the stream has ended. */
function probeAnswer(raw: RawClient, streamId: number): ProbeResponse | undefined {
  const on = raw.frames.filter((f) => f.streamId === streamId);
  if (!on.some((f) => f.flags & FLAG.END_STREAM)) return undefined;
  const data = Buffer.concat(on.filter((f) => f.type === TYPE.DATA).map((f) => f.payload));
  assert.ok(data.length >= 5, "a reply message");
  return ProbeResponse.decode(data.subarray(5, 5 + data.readUInt32BE(1)));
}

describe("A connection's first request", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  it("the driver sends its SETTINGS first, before any request (gRPC clients wait for it)", async () => {
    const raw = await RawClient.connect(d.socket);
    try {
      raw.sock.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0))]));
      const first = await raw.until("a SETTINGS frame", () => raw.frames[0]);
      assert.equal(first.type, SETTINGS);
      raw.ackSettings();
      raw.sock.write(probeRequest(1));
      assert.equal((await raw.until("the Probe's answer", () => probeAnswer(raw, 1))).ready, true);
    } finally {
      raw.sock.destroy();
    }
  });

  it("a request sent with the preface, before the client has seen any SETTINGS, is answered", async () => {
    const raw = await RawClient.connect(d.socket);
    try {
      raw.sock.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0)), probeRequest(1)]));
      await raw.until("a SETTINGS frame", () => raw.frames.find((f) => f.type === SETTINGS));
      await new Promise((r) => setTimeout(r, 100)); // the ACK comes late
      raw.ackSettings();
      assert.equal((await raw.until("the Probe's answer", () => probeAnswer(raw, 1))).ready, true);
      // Later SETTINGS (the HTTP/2 server's own) are ACKed too; the connection goes on.
      raw.ackSettings();
      raw.sock.write(probeRequest(3));
      assert.equal((await raw.until("the second answer", () => probeAnswer(raw, 3))).ready, true);
      assert.ok(!raw.frames.some((f) => f.type === GOAWAY), "no GOAWAY: no protocol error");
    } finally {
      raw.sock.destroy();
    }
  });

  it("a PING before the first request is answered with its own payload", async () => {
    const raw = await RawClient.connect(d.socket);
    try {
      const payload = Buffer.from("csi-lab!");
      raw.sock.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0)), frame(PING, 0, 0, payload)]));
      const pong = await raw.until("a PING ACK", () => raw.frames.find((f) => f.type === PING && f.flags & ACK));
      assert.ok(pong.payload.equals(payload));
      raw.ackSettings();
      raw.sock.write(probeRequest(1));
      assert.equal((await raw.until("the Probe's answer", () => probeAnswer(raw, 1))).ready, true);
      assert.equal(raw.frames.filter((f) => f.type === PING && f.flags & ACK).length, 1, "answered once, not again by the server");
    } finally {
      raw.sock.destroy();
    }
  });

  it("an old kubelet's :authority (the socket path) is answered, in raw bytes too", async () => {
    const raw = await RawClient.connect(d.socket);
    try {
      raw.sock.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0)), probeRequest(1, d.socket)]));
      await raw.until("a SETTINGS frame", () => raw.frames.find((f) => f.type === SETTINGS));
      raw.ackSettings();
      assert.equal((await raw.until("the Probe's answer", () => probeAnswer(raw, 1))).ready, true);
      raw.ackSettings();
      raw.sock.write(probeRequest(3, d.socket));
      assert.equal((await raw.until("the second answer", () => probeAnswer(raw, 3))).ready, true);
    } finally {
      raw.sock.destroy();
    }
  });

  it("a header block that never ends (a CONTINUATION flood) ends its connection; it is not gathered in memory", async () => {
    const raw = await RawClient.connect(d.socket);
    let sent = 0;
    try {
      raw.sock.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0)), probeRequest(1, d.socket)]));
      await raw.until("a SETTINGS frame", () => raw.frames.find((f) => f.type === SETTINGS));
      raw.ackSettings();
      await raw.until("the Probe's answer", () => probeAnswer(raw, 1));
      raw.ackSettings();
      // A second request whose header block goes on and on: 16 KiB CONTINUATIONs, never END_HEADERS.
      raw.sock.write(frame(TYPE.HEADERS, 0, 3, encodeWithoutIndexing([[":method", "POST"], [":path", "/csi.v1.Identity/Probe"], [":authority", d.socket]])));
      const more = frame(TYPE.CONTINUATION, 0, 3, Buffer.concat([Buffer.from([0x00, 0x01, 0x78, 0x7f, 0x81, 0x7f]), Buffer.alloc(16384 - 6, 0x61)]));
      const limit = 64 * 1024 * 1024;
      while (!raw.closed && sent < limit) {
        sent += more.length;
        if (!raw.sock.write(more)) await drainedOrClosed(raw.sock);
      }
      assert.ok(raw.closed, `the driver kept the connection open through ${sent} bytes of one header block`);
    } finally {
      raw.sock.destroy();
    }
    assert.equal((await d.client.identity.probe({})).ready, true);
  });

  it("bytes that are not HTTP/2 end their connection, and the driver goes on", async () => {
    const raw = await RawClient.connect(d.socket);
    raw.sock.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await raw.until("the connection to close", () => raw.closed);
    assert.equal((await d.client.identity.probe({})).ready, true);
  });

  it("connections that send nothing, or stop half-way, hold nobody up and leave the driver well", async () => {
    const idle = await RawClient.connect(d.socket);
    const half = await RawClient.connect(d.socket);
    half.sock.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0)), probeRequest(1).subarray(0, 20)]));
    try {
      for (let i = 0; i < 5; i++) assert.equal((await d.client.identity.probe({})).ready, true);
    } finally {
      idle.sock.destroy();
      half.sock.destroy();
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await d.client.identity.probe({})).ready, true);
    assert.equal(d.proc.exitCode, null);
  });
});
