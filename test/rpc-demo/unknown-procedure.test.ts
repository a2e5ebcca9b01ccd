// A call ID that is not in the dispatch table gets a clear "no such
// procedure" answer, in the style of the ID: Sun RPC's three cases for
// numeric IDs, UNIMPLEMENTED for gRPC paths.
import assert from "node:assert/strict";
import { Playground, PLAYGROUND_PROGRAM, PLAYGROUND_VERSION } from "../../src/rpc-demo/call-ids/playground";
import type { AnyProcedure, CallNumber } from "../../src/rpc-demo/call-ids/registry";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { connectClient, startServer } from "../../src/rpc-demo/transports";
import { Http2Client } from "../../src/rpc-demo/transports/http2-client";
import type { TransportName } from "../../src/rpc-demo/transports/transport";

/** Playground.add with another call ID: what a client with a stale or wrong table would send. */
function withNumber(n: Partial<CallNumber>): AnyProcedure {
  return { ...(Playground.add as AnyProcedure), number: { ...Playground.add.number, ...n } };
}

const cases: { name: string; number: Partial<CallNumber>; message: RegExp }[] = [
  { name: "an unknown program", number: { program: 0x20000001 }, message: /no such procedure: program 0x20000001 is not served here \(PROG_UNAVAIL\)/ },
  { name: "a program at a version not served", number: { version: 7 }, message: /served at versions 1\.\.1, not 7 \(PROG_MISMATCH\)/ },
  { name: "an unknown procedure number", number: { procedure: 99 }, message: /no such procedure: program 0x2000c51a version 1 procedure 99 \(PROC_UNAVAIL\)/ },
];

for (const transport of ["tcp", "udp"] as TransportName[]) {
  describe(`unknown numeric call IDs over ${transport}`, () => {
    for (const c of cases) {
      it(`${c.name} answers UNIMPLEMENTED with ${c.message.source.match(/\\\(([A-Z_]+)\\\)/)?.[1]}`, async () => {
        const server = await startServer(transport, playgroundDispatcher());
        const client = await connectClient(transport, { port: server.port });
        try {
          await assert.rejects(client.roundTrip(withNumber(c.number), protobufCodec, Buffer.from([8, 2, 16, 4])), (err: RpcError) => {
            assert.ok(err instanceof RpcError);
            assert.equal(err.code, Code.UNIMPLEMENTED);
            assert.match(err.message, c.message);
            return true;
          });
        } finally {
          await client.close();
          await server.close();
        }
      });
    }
  });
}

describe("unknown call IDs by name over HTTP/2", () => {
  it("a path not in the table answers UNIMPLEMENTED: no such procedure", async () => {
    const server = await startServer("http2", playgroundDispatcher());
    const client = await Http2Client.connect({ port: server.port });
    try {
      await assert.rejects(client.unary("/csilab.rpcdemo.v1.Playground/Multiply", "application/grpc", Buffer.alloc(0)), (err: RpcError) => {
        assert.equal(err.code, Code.UNIMPLEMENTED);
        assert.equal(err.message, "no such procedure: /csilab.rpcdemo.v1.Playground/Multiply (UNIMPLEMENTED)");
        return true;
      });
    } finally {
      await client.close();
      await server.close();
    }
  });

  it("the dispatch table shows both IDs of every procedure", () => {
    const table = playgroundDispatcher().describe();
    assert.match(table, /0x2000c51a\s+1\s+1\s+\/csilab\.rpcdemo\.v1\.Playground\/Add\s+add\(\)/);
    assert.equal(table.split("\n").length, 1 + Object.keys(Playground).length);
    assert.equal(PLAYGROUND_PROGRAM >= 0x20000000 && PLAYGROUND_PROGRAM <= 0x3fffffff, true, "in RFC 5531's range for anyone's use");
    assert.equal(PLAYGROUND_VERSION, 1);
  });
});
