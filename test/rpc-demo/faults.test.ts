// Injected faults show the delivery guarantees: a duplicate over TCP runs
// twice (no cache there), a crash loses UDP's cache, a reply late past the
// deadline still means the call ran.
import assert from "node:assert/strict";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { describeFaults, FaultInjector, NO_FAULTS, parseFaults } from "../../src/rpc-demo/faults/faults";
import { runScenarios } from "../../src/rpc-demo/faults/scenarios";
import { PlaygroundState, playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { TcpClient, TcpServer } from "../../src/rpc-demo/transports/tcp";
import { callProcedure } from "../../src/rpc-demo/transports/transport";

describe("fault injection", () => {
  it("parses the CLI's fault specs", () => {
    assert.deepEqual(parseFaults("drop"), { ...NO_FAULTS, dropFirst: 1 });
    assert.deepEqual(parseFaults("drop=0.3,reply-only,seed=9"), { ...NO_FAULTS, drop: 0.3, direction: "reply", seed: 9 });
    assert.deepEqual(parseFaults("duplicate, delay=50, crash"), { ...NO_FAULTS, duplicateFirst: 1, delayMs: 50, crash: true });
    assert.throws(() => parseFaults("drop=2"), /between 0 and 1/);
    assert.throws(() => parseFaults("explode"), /unknown fault/);
  });

  it("refuses a spec it would otherwise read as something not meant: a value where none is taken, a number not in plain decimal, a fault given twice, both directions", () => {
    for (const [spec, why] of [
      ["crash=7", /--fault crash=7: crash takes no value/],
      ["reply-only=yes", /reply-only takes no value/],
      ["delay=0x10", /--fault delay=0x10: delay needs a whole number from 0 to/],
      ["delay=1e3", /delay needs a whole number/],
      ["delay=2.5", /delay needs a whole number/],
      ["delay=5=6", /delay needs a whole number/],
      ["drop=", /--fault drop=: a chance is a number between 0 and 1/],
      ["duplicate=0x1", /a chance is a number between 0 and 1/],
      ["seed", /seed needs a whole number from 0 to 4294967295/],
      ["seed=1.5", /seed needs a whole number/],
      ["seed=4294967296", /seed needs a whole number from 0 to 4294967295/],
      ["drop=0.1,drop=0.9", /--fault drop=0\.1,drop=0\.9: drop=0\.1 and drop=0\.9 both given; give one/],
      ["drop,drop=0.3", /drop and drop=0\.3 both given/],
      ["request-only,reply-only", /request-only and reply-only both given/],
    ] as const) {
      assert.throws(() => parseFaults(spec), why, spec);
    }
    assert.deepEqual(parseFaults("drop=.5,duplicate=1,delay,seed=4294967295"), { ...NO_FAULTS, drop: 0.5, duplicate: 1, delayMs: 200, seed: 4294967295 });
  });

  it("names the direction a one-way fault hits in plain words (the walkthrough's and serve's header)", () => {
    assert.equal(describeFaults(parseFaults("delay=3000,reply-only")), "delay 3000 ms (replies only)");
    assert.equal(describeFaults(parseFaults("drop,request-only")), "drop the first message (requests only)");
    assert.equal(describeFaults(parseFaults("duplicate")), "duplicate the first message");
  });

  it("a request duplicated on the way runs twice over TCP, which has no duplicate cache", async () => {
    const state = new PlaygroundState();
    const server = await TcpServer.listen(playgroundDispatcher(state));
    const client = await TcpClient.connect({ port: server.port, faults: new FaultInjector({ ...NO_FAULTS, duplicateFirst: 1 }) });
    try {
      const res = await callProcedure(client, protobufCodec, Playground.increment, { counter: "c", requestToken: "t" });
      assert.equal(res.value, 1n, "the caller takes the first reply");
      // The second copy is still running or done; ask something else to be sure it has landed.
      await callProcedure(client, protobufCodec, Playground.add, { a: 1n, b: 1n });
      assert.equal(state.runs.get("t"), 2);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it("a reply held up past the deadline: the caller gets DEADLINE_EXCEEDED, yet the call ran", async () => {
    const state = new PlaygroundState();
    const server = await TcpServer.listen(playgroundDispatcher(state), { faults: new FaultInjector({ ...NO_FAULTS, delayMs: 500, direction: "reply" }) });
    const client = await TcpClient.connect({ port: server.port });
    try {
      await assert.rejects(callProcedure(client, protobufCodec, Playground.increment, { counter: "c", requestToken: "late" }, { timeoutMs: 50 }), (err: RpcError) => {
        assert.equal(err.code, Code.DEADLINE_EXCEEDED);
        return true;
      });
      // Records are handled in order: once a later call is answered, the Increment has run.
      await callProcedure(client, protobufCodec, Playground.add, { a: 1n, b: 1n });
      assert.equal(state.runs.get("late"), 1);
    } finally {
      await client.close();
      await server.close();
    }
  });

  it("the class scenarios: at-least-once without the cache, at-most-once with it, and a crash defeats the cache", async () => {
    const [noCache, cache, deadline, crash] = await runScenarios();
    assert.equal(noCache!.completed, noCache!.calls);
    assert.ok(noCache!.runs > noCache!.calls, `without the cache some calls ran twice (${noCache!.runs} runs)`);
    assert.equal(cache!.completed, cache!.calls);
    assert.equal(cache!.runs, cache!.calls, "with the cache each ran once");
    assert.deepEqual(deadline!.failed, ["DEADLINE_EXCEEDED"]);
    assert.equal(deadline!.runs, 1);
    assert.equal(crash!.completed, 1);
    assert.equal(crash!.runs, 2, "the restarted server had forgotten the call");
  });
});
