// TCP carries many calls at once on one connection: replies come back in
// the order calls finish, matched to their callers by xid.
import assert from "node:assert/strict";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec, jsonCodec } from "../../src/rpc-demo/codecs/codec";
import { playgroundDispatcher } from "../../src/rpc-demo/playground-service";
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

  it("answers a slow call after a fast one sent later on the same connection", async () => {
    const finished: string[] = [];
    const slow = callProcedure(client, protobufCodec, Playground.sleep, { millis: 300 }).then(() => finished.push("sleep"));
    const fast = callProcedure(client, protobufCodec, Playground.add, { a: 2, b: 40 }).then((r) => {
      finished.push("add");
      return r;
    });
    assert.equal(client.inFlight, 2);
    assert.deepEqual(await fast, { sum: 42 });
    await slow;
    assert.deepEqual(finished, ["add", "sleep"]);
    assert.equal(server.connectionsAccepted, 1);
  });

  it("keeps 200 concurrent calls apart, with either codec", async () => {
    const calls = Array.from({ length: 200 }, (_, i) =>
      callProcedure(client, i % 2 ? jsonCodec : protobufCodec, Playground.add, { a: i, b: -2 * i }),
    );
    const sums = (await Promise.all(calls)).map((r) => r.sum);
    assert.deepEqual(sums, Array.from({ length: 200 }, (_, i) => 0 - i));
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
