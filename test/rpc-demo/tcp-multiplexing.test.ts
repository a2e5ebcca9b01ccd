// TCP carries many calls at once on one connection: replies come back in
// the order calls finish, matched to their callers by xid.
import assert from "node:assert/strict";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec, jsonCodec } from "../../src/rpc-demo/codecs/codec";
import { playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { TcpClient, TcpServer } from "../../src/rpc-demo/transports/tcp";
import { callProcedure } from "../../src/rpc-demo/transports/transport";

describe("TCP transport", () => {
  let server: TcpServer;
  let client: TcpClient;

  beforeEach(async () => {
    server = await TcpServer.listen(playgroundDispatcher());
    client = await TcpClient.connect({ port: server.port });
  });
  afterEach(async () => {
    await client.close();
    await server.close();
  });

  it("answers a fast call while a slow one sent earlier is still running on the same connection", async () => {
    const slow = callProcedure(client, protobufCodec, Playground.sleep, { millis: 30_000 }).then(
      () => "finished",
      (err: unknown) => err,
    );
    assert.deepEqual(await callProcedure(client, protobufCodec, Playground.add, { a: 2n, b: 40n }), { sum: 42n });
    assert.equal(client.inFlight, 1, "the slow call is still waiting");
    assert.equal(server.connectionsAccepted, 1);
    await client.close();
    const outcome = await slow;
    assert.ok(outcome instanceof RpcError && outcome.code === Code.CANCELLED, `the slow call ended by closing: ${String(outcome)}`);
  });

  it("keeps 200 concurrent calls apart, with either codec", async () => {
    const calls = Array.from({ length: 200 }, (_, i) =>
      callProcedure(client, i % 2 ? jsonCodec : protobufCodec, Playground.add, { a: BigInt(i), b: BigInt(-2 * i) }),
    );
    const sums = (await Promise.all(calls)).map((r) => r.sum);
    assert.deepEqual(sums, Array.from({ length: 200 }, (_, i) => BigInt(-i)));
    assert.equal(server.connectionsAccepted, 1);
  });

  it("reassembles records sent in many small fragments", async () => {
    const fragmented = await TcpClient.connect({ port: server.port, maxFragment: 3 });
    try {
      const text = "fragmented ".repeat(20);
      const res = await callProcedure(fragmented, protobufCodec, Playground.echo, { text, numbers: [1, 2, 3] });
      assert.equal(res.text, text);
      assert.deepEqual(res.numbers, [1, 2, 3]);
    } finally {
      await fragmented.close();
    }
  });
});
