// Arguments that do not decode are the caller's fault: every transport
// answers INVALID_ARGUMENT (Sun RPC's GARBAGE_ARGS over TCP and UDP) and
// says what was wrong, without running the procedure.
import assert from "node:assert/strict";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import type { AnyProcedure } from "../../src/rpc-demo/call-ids/registry";
import { jsonCodec, protobufCodec } from "../../src/rpc-demo/codecs/codec";
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

  for (const transport of TRANSPORT_NAMES) {
    it(`over ${transport}: JSON that does not fit the schema is INVALID_ARGUMENT too, naming field, value and type`, async () => {
      const state = new PlaygroundState();
      const server = await startServer(transport, playgroundDispatcher(state));
      const client = await connectClient(transport, { port: server.port });
      try {
        for (const [json, why] of [
          ['{"a":2.5,"b":1}', /field a: 2\.5 is not a whole number; expected sint64/],
          ['{"a":"two","b":40}', /field a: "two" is not a number; expected sint64/],
          ['{"a":1,"c":2}', /unknown field "c"/],
          ['{"a":9223372036854775808}', /field a: 9223372036854775808 is out of range; expected sint64/],
        ] as const) {
          await assert.rejects(client.roundTrip(Playground.add as AnyProcedure, jsonCodec, Buffer.from(json)), (err: RpcError) => {
            assert.equal(err.code, Code.INVALID_ARGUMENT);
            assert.match(err.message, /^cannot decode the csilab\.rpcdemo\.v1\.AddRequest argument: /);
            assert.match(err.message, why);
            return true;
          });
        }
        // An exact 64-bit number, written as a JSON number, is read digit for digit.
        const body = await client.roundTrip(Playground.add as AnyProcedure, jsonCodec, Buffer.from('{"a":9223372036854775806,"b":1}'));
        assert.equal(body.toString(), '{"sum":"9223372036854775807"}');
      } finally {
        await client.close();
        await server.close();
      }
    });
  }
});
