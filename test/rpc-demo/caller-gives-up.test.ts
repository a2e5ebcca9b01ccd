// A caller that stops waiting while the server still works on its call: its deadline passed,
// or it cancelled. The server may finish the work all the same (the call ran, though the caller
// got DEADLINE_EXCEEDED), and what it narrates must say what happened: why the caller went, that
// the work stands, and that the answer it would have sent goes nowhere.
//
// Real servers on loopback; the caller's side is a bare HTTP/2 stream or our TCP client, so the
// test decides when the caller goes. No timing assertions: each step waits for the server's own
// narration of the step before.
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import { once } from "node:events";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { FaultInjector } from "../../src/rpc-demo/faults/faults";
import { PlaygroundState, playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { Trace, type TraceStep } from "../../src/rpc-demo/trace";
import { Http2Server } from "../../src/rpc-demo/transports/http2-server";
import { TcpClient, TcpServer } from "../../src/rpc-demo/transports/tcp";
import { callProcedure } from "../../src/rpc-demo/transports/transport";

/** A Trace whose steps a test can wait for. */
class WatchedTrace extends Trace {
  private readonly waiting: { re: RegExp; resolve: (s: TraceStep) => void }[] = [];

  constructor() {
    super((step) => {
      for (const w of [...this.waiting]) {
        if (!w.re.test(step.title)) continue;
        this.waiting.splice(this.waiting.indexOf(w), 1);
        w.resolve(step);
      }
    });
  }

  /** The next step whose title matches. */
  next(re: RegExp): Promise<TraceStep> {
    return new Promise((resolve) => this.waiting.push({ re, resolve }));
  }

  titles(): string[] {
    return this.steps.map((s) => `${s.side} ${s.title}`);
  }
}

/** One gRPC call on a bare HTTP/2 stream: the test, not a client library, decides when it ends. */
function bareCall(session: http2.ClientHttp2Session, method: string, message: Buffer, grpcTimeout: string): http2.ClientHttp2Stream {
  const stream = session.request({
    ":method": "POST",
    ":path": `/csilab.rpcdemo.v1.Playground/${method}`,
    "content-type": "application/grpc",
    te: "trailers",
    "grpc-timeout": grpcTimeout,
  });
  stream.on("error", () => undefined);
  stream.resume(); // read the reply, so the stream can end
  const prefix = Buffer.from([0, 0, 0, 0, message.length]);
  stream.end(Buffer.concat([prefix, message]));
  return stream;
}

const SLEEP_10_S = Buffer.from([0x08, 0x90, 0x4e]); // SleepRequest{millis: 10000}

describe("a caller that stops waiting while the server works", () => {
  describe("over HTTP/2", () => {
    let state: PlaygroundState;
    let trace: WatchedTrace;
    let server: Http2Server;
    let session: http2.ClientHttp2Session;

    async function start(faults = new FaultInjector()): Promise<void> {
      state = new PlaygroundState();
      trace = new WatchedTrace();
      server = await Http2Server.listen(playgroundDispatcher(state), { trace, faults });
      session = http2.connect(`http://127.0.0.1:${server.port}`);
      session.on("error", () => undefined);
    }
    afterEach(async () => {
      session.destroy();
      await server.close();
    });

    it("a stream reset within a second of its deadline is the deadline passing (grpc-js and our client reset then), not a cancel", async () => {
      await start();
      const aborted = once(state.events, "sleep-aborted");
      const running = trace.next(/^decode the arguments/);
      const stream = bareCall(session, "Sleep", SLEEP_10_S, "900m");
      await running;
      stream.close(http2.constants.NGHTTP2_CANCEL);
      const [reason] = (await aborted) as [RpcError];
      assert.equal(reason.codeName, "DEADLINE_EXCEEDED", reason.message);
    });

    it("a stream reset long before its deadline is a cancel", async () => {
      await start();
      const aborted = once(state.events, "sleep-aborted");
      const running = trace.next(/^decode the arguments/);
      const stream = bareCall(session, "Sleep", SLEEP_10_S, "60S");
      await running;
      stream.close(http2.constants.NGHTTP2_CANCEL);
      const [reason] = (await aborted) as [RpcError];
      assert.equal(reason.codeName, "CANCELLED");
      assert.match(reason.message, /^the caller cancelled the call: it reset the stream \(RST_STREAM CANCEL\) \d+ ms before the deadline$/);
    });

  });

  describe("over TCP", () => {
    let state: PlaygroundState;
    let trace: WatchedTrace;
    let server: TcpServer;

    async function start(faults = new FaultInjector()): Promise<void> {
      state = new PlaygroundState();
      trace = new WatchedTrace();
      server = await TcpServer.listen(playgroundDispatcher(state), { trace, faults });
    }
    afterEach(() => server.close());

    it("a connection closed within a second of a call's deadline is the deadline passing (csi-lab rpc call hangs up then), not a cancel", async () => {
      await start();
      const client = await TcpClient.connect({ port: server.port });
      const aborted = once(state.events, "sleep-aborted");
      const running = trace.next(/^decode the arguments/);
      const call = callProcedure(client, protobufCodec, Playground.sleep, { millis: 10_000 }, { timeoutMs: 900 }).catch((err: unknown) => err);
      await running;
      await client.close();
      assert.equal(((await call) as RpcError).code, Code.CANCELLED, "our client, closed, tells its caller so");
      const [reason] = (await aborted) as [RpcError];
      assert.equal(reason.codeName, "DEADLINE_EXCEEDED", reason.message);
      assert.match(reason.message, /^the caller gave up at its deadline: it closed the connection/);
    });
  });
});
