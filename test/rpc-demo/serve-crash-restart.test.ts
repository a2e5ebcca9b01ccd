// `csi-lab rpc serve --fault crash` goes down after running a call, before
// replying, and comes back a second later: on the port it had, also when
// --port 0 let the system pick it. The caller was told that port (serve
// printed it); its retry reaches the restarted server there, which runs the
// call again (its cache was lost, the counters were kept).
import assert from "node:assert/strict";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { parseFaults } from "../../src/rpc-demo/faults/faults";
import { RpcError } from "../../src/rpc-demo/rpc-error";
import { connectClient } from "../../src/rpc-demo/transports";
import { callProcedure, type ServerTransport, type TransportName } from "../../src/rpc-demo/transports/transport";
import { serve } from "../../src/rpc-demo/walkthrough/two-ends";
import { until } from "./started-by-shell";

/** One Increment on a new connection to 127.0.0.1:port: its value, or the error's code name. */
async function increment(transport: TransportName, port: number, timeoutMs: number): Promise<string> {
  const client = await connectClient(transport, { port });
  try {
    const res = await callProcedure(client, protobufCodec, Playground.increment, { counter: "c", requestToken: "t1" }, { timeoutMs });
    return `value ${res.value}`;
  } catch (err) {
    return RpcError.from(err).codeName;
  } finally {
    await client.close();
  }
}

describe("rpc serve --fault crash --port 0: the restarted server", () => {
  let server: ServerTransport | undefined;
  afterEach(async () => server?.close());

  for (const transport of ["tcp", "udp", "http2"] as TransportName[]) {
    it(`over ${transport}, comes back on the port it announced, and the caller's retry there runs the call again`, async () => {
      const said: string[] = [];
      const opts = { transport, host: "127.0.0.1", port: 0, faults: parseFaults("crash"), duplicateCache: true, quiet: true, plain: true };
      server = await serve({ ...opts, write: (t) => said.push(t) });
      const announced = Number(/^Playground serving over \w+ on 127\.0\.0\.1:(\d+) /.exec(said[0]!)![1]);
      assert.equal(announced, server.port);
      // The crash: no reply (over UDP the caller waits out its deadline; over TCP and HTTP/2 the connection goes).
      assert.match(await increment(transport, announced, 500), /^(UNAVAILABLE|DEADLINE_EXCEEDED)$/);
      await until("the server to say it restarted", () => said.some((l) => /^server restarted/.test(l)));
      assert.equal(await increment(transport, announced, 2000), "value 2", "the retry reached it, and ran the call a second time");
      assert.ok(said.includes(`server restarted on 127.0.0.1:${announced}`), said.join("\n"));
    });
  }
});
