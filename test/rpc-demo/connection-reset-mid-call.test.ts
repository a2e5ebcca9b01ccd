// A connection that breaks in the middle of a call ends that call, never the other end's process.
// A client that resets its connection (RST, not a polite FIN) while the server runs its call: the
// server tells the handler to stop and goes on answering other clients. A server that resets the
// connection under a waiting call: our client fails that call with UNAVAILABLE, saying so, and
// closing that client afterwards returns (the HTTP/2 one's close waited forever for a session the
// reset had already destroyed).
//
// Real servers on loopback; the end that breaks is a bare socket, so the test decides when, and
// socket.resetAndDestroy() makes the kernel send a real RST. No timing assertions: each step
// waits for the step before it to be seen.
import assert from "node:assert/strict";
import { once } from "node:events";
import * as http2 from "node:http2";
import * as net from "node:net";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { PlaygroundState, playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { Trace } from "../../src/rpc-demo/trace";
import { Http2Client } from "../../src/rpc-demo/transports/http2-client";
import { Http2Server } from "../../src/rpc-demo/transports/http2-server";
import { FrameAnnotator } from "../../src/rpc-demo/transports/http2-wire";
import { markRecord } from "../../src/rpc-demo/transports/record-marking";
import { encodeCall } from "../../src/rpc-demo/transports/rpc-header";
import { TcpClient, TcpServer } from "../../src/rpc-demo/transports/tcp";
import { callProcedure, type ClientTransport } from "../../src/rpc-demo/transports/transport";

const SLEEP_10_S = Buffer.from([0x08, 0x90, 0x4e]); // SleepRequest{millis: 10000}

/** A trace that resolves `running` when a handler starts. */
function watched(): { trace: Trace; running: Promise<void> } {
  let started: () => void = () => undefined;
  const running = new Promise<void>((resolve) => (started = resolve));
  return { trace: new Trace((s) => void (/^decode the arguments/.test(s.title) && started())), running };
}

async function addOver(client: ClientTransport): Promise<unknown> {
  try {
    return await callProcedure(client, protobufCodec, Playground.add, { a: 2n, b: 40n }, { timeoutMs: 10_000 });
  } finally {
    await client.close();
  }
}

/** A server that reads until `ready(bytes so far)` and then resets the connection (RST). */
async function resettingServer(ready: (chunk: Buffer) => boolean): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.on("error", () => undefined);
    socket.on("data", (chunk: Buffer) => void (ready(chunk) && socket.resetAndDestroy()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

describe("a connection reset in the middle of a call", () => {
  describe("by the client", () => {
    it("over TCP: the server stops the call, says the client went, and answers the next client", async () => {
      const state = new PlaygroundState();
      const { trace, running } = watched();
      const server = await TcpServer.listen(playgroundDispatcher(state), { trace });
      try {
        const aborted = once(state.events, "sleep-aborted");
        const socket = net.connect(server.port, "127.0.0.1");
        socket.on("error", () => undefined);
        await once(socket, "connect");
        socket.write(markRecord(encodeCall({ xid: 1, codecId: protobufCodec.id, number: Playground.sleep.number, timeoutMs: 60_000, body: SLEEP_10_S })));
        await running;
        socket.resetAndDestroy();
        const [reason] = (await aborted) as [RpcError];
        assert.equal(reason.codeName, "CANCELLED", reason.message);
        assert.deepEqual(await addOver(await TcpClient.connect({ port: server.port })), { sum: 42n });
        assert.ok(trace.steps.some((s) => s.title === "the client closed the TCP connection with 1 call still running"));
      } finally {
        await server.close();
      }
    });

    it("over HTTP/2: the server stops the call and answers the next client", async () => {
      const state = new PlaygroundState();
      const { trace, running } = watched();
      const server = await Http2Server.listen(playgroundDispatcher(state), { trace });
      try {
        const aborted = once(state.events, "sleep-aborted");
        const socket = net.connect(server.port, "127.0.0.1");
        socket.on("error", () => undefined);
        const session = http2.connect(`http://127.0.0.1:${server.port}`, { createConnection: () => socket });
        session.on("error", () => undefined);
        const stream = session.request({ ":method": "POST", ":path": Playground.sleep.path, "content-type": "application/grpc", te: "trailers" });
        stream.on("error", () => undefined);
        stream.end(Buffer.concat([Buffer.from([0, 0, 0, 0, SLEEP_10_S.length]), SLEEP_10_S]));
        await running;
        socket.resetAndDestroy();
        await aborted;
        assert.deepEqual(await addOver(await Http2Client.connect({ port: server.port })), { sum: 42n });
      } finally {
        await server.close();
      }
    });
  });

  describe("by the server", () => {
    /** The waiting call's failure: UNAVAILABLE, with exactly `message`. */
    const unavailable = (message: string) => (err: unknown) => {
      assert.ok(err instanceof RpcError, String(err));
      assert.equal(err.code, Code.UNAVAILABLE);
      assert.equal(err.message, message);
      return true;
    };

    it("over TCP: our client fails the waiting call with UNAVAILABLE, naming the reset", async () => {
      const server = await resettingServer(() => true);
      const client = await TcpClient.connect({ port: (server.address() as net.AddressInfo).port });
      try {
        await assert.rejects(addOver(client), unavailable("connection failed: read ECONNRESET"));
      } finally {
        server.close();
      }
    });

    it("over HTTP/2: our client fails the waiting call with UNAVAILABLE, naming the reset, and can still be closed", async () => {
      // Reset once the call's request HEADERS arrive: the connection itself was fine until then.
      const frames = new FrameAnnotator(true);
      const server = await resettingServer((chunk) => frames.push(chunk)?.frames.some((f) => f.startsWith("HEADERS")) ?? false);
      const client = await Http2Client.connect({ port: (server.address() as net.AddressInfo).port });
      try {
        await assert.rejects(addOver(client), unavailable("stream failed: read ECONNRESET"));
      } finally {
        server.close();
      }
    });
  });
});
