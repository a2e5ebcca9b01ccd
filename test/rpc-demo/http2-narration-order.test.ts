// Over HTTP/2 the client narrates each frame of a call in the order the
// frames crossed the socket: request HEADERS, request DATA (its 5-byte
// prefix), response HEADERS, response DATA (the prefix stripped), trailers.
// The order is checked against the frames the wire tap saw on that very
// connection — the raw dump the walkthrough prints — not against a list
// written here: node:http2 emits a reply's HEADERS a tick after its DATA
// when both come in one read, and the narration once followed that.
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Trace, type TraceStep } from "../../src/rpc-demo/trace";
import { Http2Client } from "../../src/rpc-demo/transports/http2-client";
import { Http2Server } from "../../src/rpc-demo/transports/http2-server";
import { PREFACE } from "../../src/rpc-demo/transports/http2-wire";
import { callProcedure } from "../../src/rpc-demo/transports/transport";
import { loadPlayground } from "./grpc-peer";

const HEADERS = 1;
const DATA = 0;

/** What each frame of a call is, read from the raw bytes the tap recorded (the 9-byte frame headers), in wire order. */
function framesOnTheWire(steps: readonly TraceStep[]): string[] {
  const out: string[] = [];
  let responseHeaders = false;
  for (const s of steps) {
    const dir = /^(write|read) \d+ bytes (to|from) the TCP connection/.exec(s.title)?.[1];
    if (s.side !== "client" || !dir || !s.bytes) continue;
    const buf = s.bytes.data;
    let pos = buf.subarray(0, PREFACE.length).equals(PREFACE) ? PREFACE.length : 0;
    for (; pos + 9 <= buf.length; pos += 9 + buf.readUIntBE(pos, 3)) {
      const type = buf[pos + 3]!;
      const stream = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      if (stream === 0 || (type !== HEADERS && type !== DATA)) continue;
      if (dir === "write") out.push(type === HEADERS ? "request HEADERS" : "request DATA");
      else if (type === DATA) out.push("response DATA");
      else {
        out.push(responseHeaders ? "trailers" : "response HEADERS");
        responseHeaders = true;
      }
    }
  }
  // A message may span several DATA frames; the narration tells it once.
  return out.filter((f, i) => f !== out[i - 1]);
}

/** The client's narration of the same frames, in the order it told them. */
function narrated(steps: readonly TraceStep[]): string[] {
  return steps.flatMap((s) => {
    const m = s.side === "client" ? /^(request HEADERS|request DATA|response HEADERS|response DATA|trailers)\b/.exec(s.title) : null;
    return m ? [m[1]!] : [];
  });
}

type Peer = { port: number; close(): Promise<void> };

async function ourServer(): Promise<Peer> {
  const server = await Http2Server.listen(playgroundDispatcher());
  return { port: server.port, close: () => server.close() };
}

async function grpcJsServer(): Promise<Peer> {
  const server = new grpc.Server();
  type Unary = (call: grpc.ServerUnaryCall<Record<string, unknown>, object>, cb: grpc.sendUnaryData<object>) => void;
  const impl: Record<string, Unary> = {
    Add: (call, cb) => cb(null, { sum: String(BigInt(call.request.a as string) + BigInt(call.request.b as string)) }),
    Echo: (call, cb) => cb(null, call.request),
    Fail: (call, cb) => cb({ code: Number(call.request.code), details: String(call.request.message) }),
  };
  server.addService(loadPlayground().service, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, close: async () => server.forceShutdown() };
}

describe("HTTP/2: the client narrates a call's frames in wire order", () => {
  const calls = {
    "Add (one DATA frame each way)": (client: Http2Client, trace: Trace) =>
      callProcedure(client, protobufCodec, Playground.add, { a: 2n, b: 40n }, { timeoutMs: 5000, trace }),
    "Echo of 40,000 bytes (several DATA frames each way)": (client: Http2Client, trace: Trace) =>
      callProcedure(client, protobufCodec, Playground.echo, { text: "x".repeat(40_000) } as never, { timeoutMs: 5000, trace }),
    "Fail (trailers-only: one HEADERS frame back)": (client: Http2Client, trace: Trace) =>
      callProcedure(client, protobufCodec, Playground.fail, { code: 5, message: "no such thing" }, { timeoutMs: 5000, trace }).then(
        () => assert.fail("Fail answered OK"),
        (err: unknown) => assert.equal((err as { code: number }).code, 5),
      ),
  };
  for (const [peerName, start] of [["our server", ourServer], ["a grpc-js server", grpcJsServer]] as const) {
    for (const [name, call] of Object.entries(calls)) {
      it(`${name}, from ${peerName}: the narrated order is the order of the frames on the socket`, async () => {
        const peer = await start();
        const client = await Http2Client.connect({ port: peer.port, wire: true });
        const trace = new Trace();
        try {
          await call(client, trace);
        } finally {
          await client.close();
          await peer.close();
        }
        const wire = framesOnTheWire(trace.steps);
        const told = narrated(trace.steps);
        const story = trace.steps.map((s) => `${s.side} ${s.title}`).join("\n");
        assert.deepEqual(told, wire, story);
        // and the wire itself is a whole call: the reply's HEADERS came before anything else of the reply
        assert.deepEqual(wire.slice(0, 3), ["request HEADERS", "request DATA", "response HEADERS"], story);
      });
    }
  }
});
