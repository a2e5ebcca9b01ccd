// Over UDP with 30% of datagrams lost in each direction, every call still
// completes, and thanks to the duplicate-request cache each one runs on the
// server exactly once. Without the cache, retransmissions run some twice.
import assert from "node:assert/strict";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { FaultInjector, NO_FAULTS } from "../../src/rpc-demo/faults/faults";
import { PlaygroundState, playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { UdpClient, UdpServer } from "../../src/rpc-demo/transports/udp";
import { callProcedure } from "../../src/rpc-demo/transports/transport";

const CALLS = 300;
const lossy = (seed: number) => new FaultInjector({ ...NO_FAULTS, drop: 0.3, seed });

async function run(duplicateCache: boolean) {
  const state = new PlaygroundState();
  const serverFaults = lossy(7);
  const clientFaults = lossy(11);
  const server = await UdpServer.listen(playgroundDispatcher(state), { duplicateCache, faults: serverFaults });
  const client = await UdpClient.connect({ port: server.port, faults: clientFaults, retransmitMs: 10, maxRetransmitMs: 40, defaultTimeoutMs: 20_000 });
  try {
    const replies = await Promise.all(
      Array.from({ length: CALLS }, (_, i) =>
        callProcedure(client, protobufCodec, Playground.increment, { counter: "c", requestToken: `call-${i}` }),
      ),
    );
    return { state, replies, server, client, dropped: serverFaults.stats.dropped + clientFaults.stats.dropped };
  } finally {
    await client.close();
    await server.close();
  }
}

describe("UDP with 30% injected loss", () => {
  it(`completes all ${CALLS} calls, each run exactly once on the server (duplicate-request cache)`, async () => {
    const { state, replies, server, client, dropped } = await run(true);
    assert.equal(replies.length, CALLS);
    assert.ok(dropped > CALLS / 2, `the faults really dropped datagrams (${dropped})`);
    assert.ok(client.stats.retransmits > 0);
    for (let i = 0; i < CALLS; i++) assert.equal(state.runs.get(`call-${i}`), 1, `call-${i} ran ${state.runs.get(`call-${i}`)} times`);
    assert.equal(state.counters.get("c"), BigInt(CALLS));
    // Every reply value is distinct: no two calls were given the same result.
    assert.equal(new Set(replies.map((r) => r.value)).size, CALLS);
    assert.ok(server.cache.stats.replayed > 0, "some lost replies were resent from the cache");
  });

  it("without the cache, retransmitted calls run more than once (at-least-once)", async () => {
    const { state, replies } = await run(false);
    assert.equal(replies.length, CALLS);
    const twice = [...state.runs.values()].filter((n) => n > 1).length;
    assert.ok(twice > 0, "some call ran twice");
    assert.ok(state.counters.get("c")! > BigInt(CALLS));
  });
});
