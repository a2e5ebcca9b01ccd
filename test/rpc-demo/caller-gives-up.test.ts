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
import { FaultInjector, NO_FAULTS } from "../../src/rpc-demo/faults/faults";
import { PlaygroundState, playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { Trace, type TraceStep } from "../../src/rpc-demo/trace";
import { Http2Client } from "../../src/rpc-demo/transports/http2-client";
import { Http2Server } from "../../src/rpc-demo/transports/http2-server";
import { TcpClient, TcpServer } from "../../src/rpc-demo/transports/tcp";
import { callProcedure } from "../../src/rpc-demo/transports/transport";
import { serve } from "../../src/rpc-demo/walkthrough/two-ends";

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

    it("a reply held up past the caller's deadline: the server says the caller went and the work stands, and sends nothing on that stream", async () => {
      await start(new FaultInjector({ ...NO_FAULTS, delayMs: 300, direction: "reply" }));
      const client = await Http2Client.connect({ port: server.port });
      try {
        const late = callProcedure(client, protobufCodec, Playground.increment, { counter: "c", requestToken: "late" }, { timeoutMs: 100 });
        await assert.rejects(late, (err: RpcError) => err.code === Code.DEADLINE_EXCEEDED);
        // Its reply is held up like the first one, and comes due after it.
        assert.deepEqual(await callProcedure(client, protobufCodec, Playground.add, { a: 1n, b: 1n }), { sum: 2n });
      } finally {
        await client.close();
      }
      assert.equal(state.runs.get("late"), 1, "the Increment ran, though its caller got DEADLINE_EXCEEDED");
      const ended = trace.steps.find((s) => s.title === "the client ended stream 1 before an answer: DEADLINE_EXCEEDED");
      assert.ok(ended, trace.titles().join("\n"));
      assert.ok(ended.notes.includes("the call has run: its work stands, though its answer (held up) will never reach the client"), ended.notes.join("\n"));
      const titles = trace.titles();
      assert.ok(titles.includes("server the reply, held up till now, is not sent: the client ended stream 1"), titles.join("\n"));
      assert.ok(!titles.some((t) => /on stream 1$/.test(t)), "nothing is sent on stream 1");
      assert.ok(titles.includes("server send HEADERS, DATA and trailing HEADERS frames on stream 3"));
    });

    it("a stream reset while the handler runs: the handler is told to stop, and its answer is not sent", async () => {
      await start();
      const aborted = once(state.events, "sleep-aborted");
      const running = trace.next(/^decode the arguments/);
      const stream = bareCall(session, "Sleep", SLEEP_10_S, "60S");
      await running;
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await aborted;
      // A later call's whole round trip: the aborted one has said all it will by then.
      const add = bareCall(session, "Add", Buffer.from([0x08, 0x02, 0x10, 0x04]), "60S");
      await once(add, "close");
      const titles = trace.titles().filter((t) => t.startsWith("server"));
      const from = titles.indexOf("server decode the arguments (protobuf)");
      assert.deepEqual(titles.slice(from + 1, from + 4), [
        "server the client ended stream 1 before an answer: CANCELLED",
        "server sleep() failed: CANCELLED",
        "server the CANCELLED answer is not sent: the client ended stream 1",
      ]);
      const ended = trace.steps.find((s) => s.title.startsWith("the client ended stream 1"))!;
      assert.match(ended.notes[0]!, /^the caller cancelled the call: it reset the stream \(RST_STREAM CANCEL\)/);
      assert.equal(ended.notes[1], "the call is still running: it is told to stop (its AbortSignal fires), and what it did so far stays done");
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

    it("a connection closed while a call runs: the server says so, the handler is told to stop, and no reply is written", async () => {
      await start();
      const client = await TcpClient.connect({ port: server.port });
      const aborted = once(state.events, "sleep-aborted");
      const running = trace.next(/^decode the arguments/);
      const call = callProcedure(client, protobufCodec, Playground.sleep, { millis: 10_000 }, { timeoutMs: 60_000 }).catch((err: unknown) => err);
      await running;
      await client.close();
      await call;
      await aborted;
      // A later call's whole round trip: the aborted one has said all it will by then.
      const other = await TcpClient.connect({ port: server.port });
      try {
        await callProcedure(other, protobufCodec, Playground.add, { a: 1n, b: 1n });
      } finally {
        await other.close();
      }
      const titles = trace.titles().filter((t) => t.startsWith("server"));
      const from = titles.indexOf("server decode the arguments (protobuf)");
      assert.deepEqual(
        titles.slice(from + 1, from + 4).map((t) => t.replace(/0x[0-9a-f]{8}/, "0x…")),
        ["server the client closed the TCP connection with 1 call still running", "server sleep() failed: CANCELLED", "server the reply to xid 0x… is not sent: the TCP connection is closed"],
        titles.join("\n"),
      );
    });

    it("a reply held up while its caller hangs up: the server says it never arrives", async () => {
      await start(new FaultInjector({ ...NO_FAULTS, delayMs: 300, direction: "reply" }));
      const client = await TcpClient.connect({ port: server.port });
      const held = trace.next(/^the reply is held up/);
      const call = callProcedure(client, protobufCodec, Playground.increment, { counter: "c", requestToken: "late" }, { timeoutMs: 60_000 }).catch((err: unknown) => err);
      await held;
      await client.close();
      await call;
      // Its reply is held up like the first one, and comes due after it.
      const other = await TcpClient.connect({ port: server.port });
      try {
        assert.deepEqual(await callProcedure(other, protobufCodec, Playground.add, { a: 1n, b: 1n }), { sum: 2n });
      } finally {
        await other.close();
      }
      assert.equal(state.runs.get("late"), 1, "the Increment ran, though its caller never got the reply");
      const titles = trace.titles().map((t) => t.replace(/0x[0-9a-f]{8}/, "0x…"));
      assert.ok(titles.includes("network ✗ the held-up reply to xid 0x… comes due, but the TCP connection is closed: it never arrives"), titles.join("\n"));
    });
  });
});

describe("csi-lab rpc serve's narration of a slow call", () => {
  it("keeps a step that comes more than a second late in its call's block: a new block is a new request", async () => {
    const lines: string[] = [];
    const server = await serve({ transport: "tcp", host: "127.0.0.1", port: 0, faults: NO_FAULTS, duplicateCache: true, quiet: false, plain: true, write: (t) => lines.push(t) });
    const client = await TcpClient.connect({ port: server.port });
    try {
      await callProcedure(client, protobufCodec, Playground.sleep, { millis: 1200 }, { timeoutMs: 60_000 });
    } finally {
      await client.close();
      await server.close();
    }
    const steps = lines.filter((l) => /^ *\d+\. server /.test(l) || l.startsWith("—"));
    assert.equal(steps.filter((l) => l.startsWith("—")).length, 1, steps.join("\n"));
    const ran = steps.find((l) => l.includes("run sleep()"))!;
    assert.doesNotMatch(ran, /^ {0,1}1\. /, "the handler's step is not the first of a new block");
  });
});
