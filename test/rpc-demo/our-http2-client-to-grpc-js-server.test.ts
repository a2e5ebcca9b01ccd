// Our hand-written HTTP/2 gRPC client calls a stock @grpc/grpc-js server
// built from proto/rpc-demo.proto: replies, error statuses, deadlines.
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { Http2Client } from "../../src/rpc-demo/transports/http2-client";
import { callProcedure } from "../../src/rpc-demo/transports/transport";
import { loadPlayground } from "./grpc-peer";

type Unary = (call: grpc.ServerUnaryCall<Record<string, number | string>, object>, cb: grpc.sendUnaryData<object>) => void;

describe("our HTTP/2 client → grpc-js server", () => {
  let server: grpc.Server;
  let client: Http2Client;
  const deadlinesSeen: (Date | number)[] = [];

  before(async () => {
    server = new grpc.Server();
    const impl: Record<string, Unary> = {
      Add: (call, cb) => cb(null, { sum: String(BigInt(call.request.a!) + BigInt(call.request.b!)) }),
      Echo: (call, cb) => cb(null, call.request),
      Increment: (_call, cb) => cb(null, { value: 1 }),
      Fail: (call, cb) => cb({ code: Number(call.request.code), details: String(call.request.message) }),
      Sleep: (call, cb) => {
        deadlinesSeen.push(call.getDeadline());
        const t = setTimeout(() => cb(null, { sleptMillis: Number(call.request.millis) }), Number(call.request.millis));
        call.on("cancelled", () => clearTimeout(t));
      },
    };
    server.addService(loadPlayground().service, impl);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    client = await Http2Client.connect({ port });
  });
  after(async () => {
    await client.close();
    server.forceShutdown();
  });

  it("completes a unary call", async () => {
    assert.deepEqual(await callProcedure(client, protobufCodec, Playground.add, { a: -5n, b: 2n ** 62n }), { sum: 2n ** 62n - 5n });
  });

  it("round-trips a message with every wire type (our codec encodes, protobufjs decodes and re-encodes)", async () => {
    const sample = {
      i32: -7, i64: -(2n ** 63n), u32: 4e9, u64: 2n ** 64n - 1n, s32: -300, s64: 2n ** 63n - 1n, f32: 123, f64: 2n ** 64n - 1n, sf32: -9, sf64: -(2n ** 63n),
      fl: -2.5, db: Math.E, flag: true, text: "grüße 🌍", blob: Buffer.from([0, 1, 255]), color: 2, point: { x: 1, y: -1 },
      numbers: [1, -2, 300], deltas: [-1n, 2n ** 53n + 1n], readings: [0.25, -1e300], tags: ["a", ""], path: [{ x: 0, y: 0 }, { x: 5, y: 6 }],
      labels: { k: "v", "": "empty key" }, id: 99n,
    };
    assert.deepEqual(await callProcedure(client, protobufCodec, Playground.echo, sample), sample);
  });

  it("turns the server's error status into an RpcError with its code and message", async () => {
    await assert.rejects(callProcedure(client, protobufCodec, Playground.fail, { code: Code.ALREADY_EXISTS, message: "volume exists — différent size" }), (err: RpcError) => {
      assert.ok(err instanceof RpcError);
      assert.equal(err.code, Code.ALREADY_EXISTS);
      assert.equal(err.message, "volume exists — différent size");
      return true;
    });
  });

  it("sends its deadline as grpc-timeout and gives DEADLINE_EXCEEDED when it expires", async () => {
    await assert.rejects(callProcedure(client, protobufCodec, Playground.sleep, { millis: 10_000 }, { timeoutMs: 100 }), (err: RpcError) => {
      assert.equal(err.code, Code.DEADLINE_EXCEEDED);
      return true;
    });
    // grpc-js turns the grpc-timeout header into an absolute deadline; without the header it is Infinity.
    const seen = Number(deadlinesSeen.at(-1));
    assert.ok(Number.isFinite(seen) && seen < Date.now() + 1000, `the server saw a deadline (${seen})`);
  });

  it("gets UNIMPLEMENTED from grpc-js for a method it does not have", async () => {
    await assert.rejects(client.unary("/csilab.rpcdemo.v1.Playground/Divide", "application/grpc", Buffer.alloc(0)), (err: RpcError) => {
      assert.equal(err.code, Code.UNIMPLEMENTED);
      return true;
    });
  });
});
