// A stock @grpc/grpc-js client, knowing only proto/rpc-demo.proto, calls
// our hand-written HTTP/2 gRPC server: a reply, an error status, an expired
// deadline, an unknown method.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { once } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { PlaygroundState, playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Http2Server } from "../../src/rpc-demo/transports/http2-server";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { grpcJsClient, unary, type PlaygroundClient } from "./grpc-peer";

describe("grpc-js client → our HTTP/2 server", () => {
  let state: PlaygroundState;
  let server: Http2Server;
  let client: PlaygroundClient;

  beforeEach(async () => {
    state = new PlaygroundState();
    server = await Http2Server.listen(playgroundDispatcher(state));
    client = grpcJsClient(server.port);
  });
  afterEach(async () => {
    client.close();
    await server.close();
  });

  it("completes a unary call", async () => {
    const res = await unary(client.Add.bind(client), { a: 40, b: 2 });
    assert.deepEqual(res, { sum: "42" });
  });

  it("adds 64-bit integers exactly, up to the largest sint64", async () => {
    const res = await unary(client.Add.bind(client), { a: "9223372036854775806", b: "1" });
    assert.deepEqual(res, { sum: "9223372036854775807" });
  });

  it("round-trips a message with every wire type (protobufjs encodes, our codec decodes and re-encodes)", async () => {
    const sample = {
      i32: -7, i64: "-9223372036854775808", u32: 4e9, u64: "18446744073709551615", s32: -300, s64: "9223372036854775807", f32: 123,
      f64: "18446744073709551615", sf32: -9, sf64: "-9223372036854775808",
      fl: 1.5, db: Math.PI, flag: true, text: "grüße", blob: Buffer.from([0, 1, 255]), color: 3, point: { x: 1, y: -1 },
      numbers: [1, -2, 300], deltas: ["-1", "9007199254740993"], readings: [0.25], tags: ["a", ""], path: [{ x: 0, y: 0 }, { x: 5, y: 6 }],
      labels: { k: "v" }, id: "99",
    };
    const res = await unary(client.Echo.bind(client), sample);
    assert.deepEqual(res, sample);
  });

  it("passes an error status and its message (percent-encoded on the wire) to the caller", async () => {
    await assert.rejects(unary(client.Fail.bind(client), { code: Code.NOT_FOUND, message: "no volume named \"ünï%code\"" }), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.NOT_FOUND);
      assert.equal(err.details, 'no volume named "ünï%code"');
      return true;
    });
  });

  it("gives DEADLINE_EXCEEDED when the deadline expires, and stops the handler", async () => {
    const aborted = once(state.events, "sleep-aborted");
    await assert.rejects(unary(client.Sleep.bind(client), { millis: 10_000 }, { deadline: Date.now() + 100 }), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
      return true;
    });
    const [reason] = (await aborted) as [RpcError];
    // Whichever side noticed first — our deadline timer, or grpc-js resetting the stream as its own timer fired — it is the deadline, not a cancel.
    assert.equal(reason.code, Code.DEADLINE_EXCEEDED, `handler stopped by ${reason.codeName}: ${reason.message}`);
  });

  it("keeps a deadline 30 days away, past what one Node timer holds (2^31 − 1 ms)", async () => {
    const res = await unary(client.Sleep.bind(client), { millis: 50 }, { deadline: Date.now() + 30 * 86_400_000 });
    assert.ok(Number((res as { sleptMillis: number }).sleptMillis) >= 50, JSON.stringify(res));
  });

  it("enforces grpc-timeout on its own, without help from the client", async () => {
    // A bare HTTP/2 request that never cancels: only the server's deadline can end it.
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const body = Buffer.from([0x08, 0x90, 0x4e]); // SleepRequest{millis: 10000}
      const prefix = Buffer.from([0, 0, 0, 0, body.length]);
      const stream = session.request({
        ":method": "POST",
        ":path": "/csilab.rpcdemo.v1.Playground/Sleep",
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-timeout": "50m",
      });
      stream.end(Buffer.concat([prefix, body]));
      const [headers] = (await once(stream, "response")) as [http2.IncomingHttpHeaders];
      assert.equal(headers["grpc-status"], String(Code.DEADLINE_EXCEEDED));
      assert.match(String(headers["grpc-message"]), /deadline/);
    } finally {
      session.close();
    }
  });

  it("answers UNIMPLEMENTED for a path that is not in the dispatch table", async () => {
    await assert.rejects(
      new Promise((resolve, reject) =>
        client.makeUnaryRequest("/csilab.rpcdemo.v1.Playground/Divide", (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (err, res) =>
          err ? reject(err) : resolve(res),
        ),
      ),
      (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.UNIMPLEMENTED);
        assert.match(err.details, /no such procedure: \/csilab\.rpcdemo\.v1\.Playground\/Divide/);
        return true;
      },
    );
  });
});
