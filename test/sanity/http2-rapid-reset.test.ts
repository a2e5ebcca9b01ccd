// "Rapid reset" (CVE-2023-44487): a client sends a whole request and resets its stream at once, again
// and again. The stream closes, so MAX_CONCURRENT_STREAMS never binds, but the call's handler goes on
// running (a CreateVolume, a mount). The driver bounds the calls still running on one connection to
// MAX_CONCURRENT_STREAMS, answered or not, stream open or not: past it, it stops reading the client
// until one ends, and then takes up the frames it left, none refused or dropped.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { GetPluginInfoResponse, IdentityDefinition } from "../../src/gen/csi";
import { GrpcServer } from "../../src/server/grpc-server";
import { ERROR_CODE, FLAG, frame, rstStream, TYPE } from "../../src/server/http2/frames";
import { grpcMessage, RawClient, requestBlock } from "./h2-raw";

const INFO = "/csi.v1.Identity/GetPluginInfo";
const PROBE = "/csi.v1.Identity/Probe";

describe("HTTP/2 calls still running after their stream is reset (rapid reset)", () => {
  let dir: string;
  let socketPath: string;
  let listener: net.Server;
  let grpc: GrpcServer;
  /** Probe's handler holds every call until released; these count what it has seen. */
  let started = 0;
  let running = 0;
  let mostRunning = 0;
  const waiting: (() => void)[] = [];
  const releaseAll = () => {
    for (const done of waiting.splice(0)) done();
  };

  before(async () => {
    dir = await fsp.mkdtemp(path.join(tmpdir(), "h2-reset-"));
    socketPath = path.join(dir, "csi.sock");
    grpc = new GrpcServer({ maxMessageBytes: 4 * 1024 * 1024 });
    grpc.addService(IdentityDefinition, {
      getPluginInfo: (_call, cb) => cb(null, { name: "h2.test", vendorVersion: "1", manifest: {} }),
      getPluginCapabilities: (_call, cb) => cb(null, { capabilities: [] }),
      probe: (_call, cb) => {
        started++;
        mostRunning = Math.max(mostRunning, ++running);
        waiting.push(() => {
          running--;
          cb(null, { ready: true });
        });
      },
    });
    listener = net.createServer((socket) => grpc.accept(socket));
    await new Promise<void>((resolve) => listener.listen(socketPath, resolve));
  });

  after(async () => {
    releaseAll();
    await grpc.close(1000);
    await new Promise((resolve) => listener.close(resolve));
    await fsp.rm(dir, { recursive: true, force: true });
  });

  /** A round trip on a connection of its own: the server's event loop has read what was sent before it, where it reads. */
  const roundTrip = async () => {
    const other = await RawClient.open(socketPath);
    try {
      other.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, requestBlock(INFO)), frame(TYPE.DATA, FLAG.END_STREAM, 1, grpcMessage()));
      await other.answer(1);
    } finally {
      other.close();
    }
  };

  it("300 requests each reset at once: 256 handlers run, the other 44 once those end; the connection still answers", async () => {
    const raw = await RawClient.open(socketPath);
    try {
      const pairs: Buffer[] = [];
      for (let i = 0; i < 300; i++) {
        const id = 1 + 2 * i;
        pairs.push(frame(TYPE.HEADERS, FLAG.END_HEADERS, id, requestBlock(PROBE)), frame(TYPE.DATA, FLAG.END_STREAM, id, grpcMessage()), rstStream(id, ERROR_CODE.CANCEL));
      }
      raw.send(...pairs);
      await raw.until("256 handlers to start", () => started >= 256);
      await roundTrip();
      assert.equal(started, 256, "no handler past MAX_CONCURRENT_STREAMS starts while 256 run");
      releaseAll();
      await raw.until("the other 44 handlers to start", () => started === 300);
      assert.ok(mostRunning <= 256, `${mostRunning} handlers ran at once`);
      releaseAll();
      raw.send(frame(TYPE.HEADERS, FLAG.END_HEADERS, 601, requestBlock(INFO)), frame(TYPE.DATA, FLAG.END_STREAM, 601, grpcMessage()));
      const a = await raw.answer(601);
      assert.equal(a.fields.get("grpc-status"), "0", a.fields.get("grpc-message"));
      assert.equal(GetPluginInfoResponse.decode(a.data.subarray(5)).name, "h2.test");
    } finally {
      raw.close();
    }
  });
});
