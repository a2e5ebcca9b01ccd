// Arguments that do not decode are the caller's fault: every transport
// answers INVALID_ARGUMENT (Sun RPC's GARBAGE_ARGS over TCP and UDP) and
// says what was wrong, without running the procedure.
import assert from "node:assert/strict";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import type { AnyProcedure } from "../../src/rpc-demo/call-ids/registry";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { PlaygroundState, playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { connectClient, startServer } from "../../src/rpc-demo/transports";
import { TRANSPORT_NAMES } from "../../src/rpc-demo/transports/transport";

// Field 1 (counter) says 5 bytes follow, but only one does.
const TRUNCATED = Buffer.from([0x0a, 0x05, 0x01]);

describe("arguments that do not decode", () => {
  for (const transport of TRANSPORT_NAMES) {
    it(`over ${transport}: INVALID_ARGUMENT, and the procedure does not run`, async () => {
      const state = new PlaygroundState();
      const server = await startServer(transport, playgroundDispatcher(state));
      const client = await connectClient(transport, { port: server.port });
      try {
        await assert.rejects(client.roundTrip(Playground.increment as AnyProcedure, protobufCodec, TRUNCATED), (err: RpcError) => {
          assert.ok(err instanceof RpcError);
          assert.equal(err.code, Code.INVALID_ARGUMENT);
          assert.match(err.message, /cannot decode the csilab\.rpcdemo\.v1\.IncrementRequest argument: malformed protobuf: length 5 .* runs past the end/);
          return true;
        });
        assert.equal(state.counters.size, 0);
      } finally {
        await client.close();
        await server.close();
      }
    });
  }
});
