/**
 * A gRPC server written on node:http2, without a gRPC library.
 *
 * HTTP/2 does the transport work: one TCP connection, many streams, each a
 * request and its response, interleaved as frames with flow control; HPACK
 * compresses the headers (the long `:path` call ID costs a byte or two
 * after the first call). What makes it gRPC is the convention on top (see
 * grpc-framing.ts): POST to the call ID, length-prefixed messages, status in
 * trailers. That convention is all a stock gRPC client needs: grpc-js
 * calls this server with nothing but the .proto file.
 */
import * as http2 from "node:http2";
import { callContext, type Dispatcher } from "../call-ids/dispatch";
import { codecForContentType } from "../codecs/codec";
import { FaultInjector, HeldMessages } from "../faults/faults";
import { hostPort } from "../../server/host-flag";
import { Code, codeName, RpcError } from "../rpc-error";
import type { Trace } from "../trace";
import { encodeGrpcMessage, frameMessage, MessageDeframer, parseTimeout, prefixSegments, PREFIX_SIZE } from "./grpc-framing";
import type { ServerTransport } from "./transport";

export interface Http2ServerOptions {
  readonly host?: string;
  readonly port?: number;
  readonly faults?: FaultInjector;
  readonly trace?: Trace;
  readonly onCrash?: () => void;
}

/** Headers as lines, pseudo-headers first, for narration. */
export function headerLines(h: http2.IncomingHttpHeaders | http2.OutgoingHttpHeaders): string[] {
  return Object.entries(h)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : String(v)}`);
}

/** What became of the call, by where it was when its client ended the stream. */
const STAGE_NOTES = {
  reading: "the request had not all arrived: nothing ran",
  running: "the call is still running: it is told to stop (its AbortSignal fires), and what it did so far stays done",
  "held-up": "the call has run: its work stands, though its answer (held up) will never reach the client",
} as const;

export class Http2Server implements ServerTransport {
  readonly name = "http2";
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  /** Set when the server ends its own streams (a crash, a shutdown): their close is not the client's doing. */
  private stopping = false;
  /** Replies an injected delay holds up. */
  private readonly held = new HeldMessages();

  private constructor(
    private readonly server: http2.Http2Server,
    readonly port: number,
  ) {
    server.on("session", (s) => {
      this.sessions.add(s);
      s.on("close", () => this.sessions.delete(s));
    });
  }

  static async listen(dispatcher: Dispatcher, opts: Http2ServerOptions = {}): Promise<Http2Server> {
    const server = http2.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    // From now on for its whole life (an accept that fails, say): heard by nobody, an 'error' would end the process.
    // A connection's own errors go to its session, which node:http2 listens to and destroys.
    server.on("error", (err) => {
      opts.trace?.step("server", "transport", `✗ the HTTP/2 server reported an error: ${err.message}`, { notes: ["the server keeps serving"] });
    });
    const port = (server.address() as { port: number }).port;
    const self = new Http2Server(server, port);
    const faults = opts.faults ?? new FaultInjector();
    server.on("stream", (stream, headers) => self.handle(stream, headers, dispatcher, faults, opts));
    return self;
  }

  private handle(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    dispatcher: Dispatcher,
    faults: FaultInjector,
    opts: Http2ServerOptions,
  ): void {
    const trace = opts.trace;
    const path = headers[":path"] ?? "";
    const contentType = headers["content-type"];
    trace?.step("server", "transport", `HTTP/2 stream ${stream.id} opens: the request HEADERS (HPACK-decoded)`, {
      event: "receive",
      notes: headerLines(headers),
    });
    stream.on("error", () => undefined); // a reset stream; the close handler below cleans up

    // Not gRPC at all: answer in plain HTTP, as the gRPC spec asks.
    if (headers[":method"] !== "POST") {
      stream.respond({ ":status": 405, allow: "POST" }, { endStream: true });
      return;
    }
    const codec = codecForContentType(contentType);
    if (!codec) {
      stream.respond({ ":status": 415, "content-type": "text/plain" });
      stream.end(`content-type ${String(contentType)} is not a gRPC content-type\n`);
      return;
    }
    // Answer in the spelling the client used (grpc-js sends plain "application/grpc").
    const replyType = contentType!;
    const fail = (err: RpcError) => {
      if (stream.closed || stream.headersSent) return;
      const h = { ":status": 200, "content-type": replyType, "grpc-status": String(err.code), "grpc-message": encodeGrpcMessage(err.message) };
      trace?.step("server", "framing", `answer with headers only ("trailers-only"): ${err.codeName}`, { notes: headerLines(h) });
      stream.respond(h, { endStream: true });
    };

    let timeoutMs: number | undefined;
    try {
      timeoutMs = parseTimeout(headers["grpc-timeout"] as string | undefined);
    } catch (err) {
      fail(RpcError.from(err));
      return;
    }
    const peer = `http2 ${hostPort(stream.session?.socket?.remoteAddress ?? "?", stream.session?.socket?.remotePort ?? 0)}`;
    const { ctx, cancel, abort, done } = callContext(peer, timeoutMs);
    // Where the call is when its client goes away: what the server can still do about it.
    let stage: "reading" | "running" | "held-up" = "reading";
    stream.on("close", () => {
      done();
      if (stream.headersSent) return;
      if (this.stopping) return abort(new RpcError(Code.UNAVAILABLE, "the server went down"));
      // Closed before we answered: the client's deadline passed, or it cancelled. Nothing more can go out on this stream.
      const seen = stream.rstCode === http2.constants.NGHTTP2_CANCEL ? "reset the stream (RST_STREAM CANCEL)" : `closed the stream (code ${stream.rstCode})`;
      const reason = cancel(seen);
      trace?.step("server", "transport", `the client ended stream ${stream.id} before an answer: ${reason.codeName}`, {
        notes: [reason.message, STAGE_NOTES[stage], "nothing more can be sent on this stream"],
      });
    });
    // What the server would have sent, had the stream still been open: it says so, and sends nothing.
    const unsent = (what: string) => trace?.step("server", "transport", `${what} is not sent: the ${this.stopping ? "server closed" : "client ended"} stream ${stream.id}`);

    const deframer = new MessageDeframer();
    stream.on("data", (chunk: Buffer) => {
      try {
        deframer.push(chunk);
      } catch (err) {
        fail(RpcError.from(err));
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    stream.on("end", () => {
      void (async () => {
        const msgs = deframer.messages;
        if (msgs.length !== 1 || deframer.leftover > 0) {
          fail(new RpcError(Code.INTERNAL, `a unary call carries exactly one message, not ${msgs.length}${deframer.leftover ? " and a partial one" : ""}`));
          return;
        }
        const msg = msgs[0]!;
        if (msg.compressed) {
          fail(new RpcError(Code.UNIMPLEMENTED, "compressed messages are not supported by this server"));
          return;
        }
        trace?.step("server", "framing", `DATA: read the 5-byte message prefix, then ${msg.body.length} bytes of message`, {

          bytes: msg.frame,
          what: "frame",
          segments: prefixSegments(msg.frame),
        });
        stage = "running";
        const outcome = await dispatcher.invoke({ path }, codec, msg.body, ctx, trace);
        stage = "held-up";
        const answer = outcome.kind === "ok" ? "the reply" : `the ${outcome.error.codeName} answer`;
        if (stream.closed || stream.destroyed) {
          unsent(answer);
          return;
        }
        if (faults.crashNow()) {
          trace?.step("server", "fault", "✗ the server crashes after running the call, before replying (injected crash)", { event: "crash" });
          this.crash();
          opts.onCrash?.();
          return;
        }
        faults.deliver(
          "reply",
          () => {
            // Held up (injected delay) while its client went away: the late answer has no stream to go on.
            if (stream.closed || stream.destroyed) return void unsent(`${answer}, held up till now,`);
            if (outcome.kind !== "ok") {
              fail(outcome.error);
              return;
            }
            this.reply(stream, replyType, outcome.body, trace);
          },
          trace,
          { canDuplicate: false, held: this.held },
        );
      })();
    });
  }

  private reply(stream: http2.ServerHttp2Stream, contentType: string, body: Buffer, trace: Trace | undefined): void {
    // A stream carries one response: a "duplicated" reply has nowhere to go.
    if (stream.closed || stream.destroyed || stream.headersSent) return;
    const head = { ":status": 200, "content-type": contentType };
    const frame = frameMessage(body);
    const trailers = { "grpc-status": "0", "grpc-message": "" };
    trace?.step("server", "framing", `reply: HEADERS, then DATA with a 5-byte prefix (${PREFIX_SIZE} + ${body.length} bytes), then trailers`, {
      notes: [...headerLines(head), `then, as trailers (0 = ${codeName(0)}):`, ...headerLines(trailers)],
      bytes: frame,
      what: "frame",
      segments: prefixSegments(frame),
    });
    stream.respond(head, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers(trailers));
    stream.end(frame);
    trace?.step("server", "transport", `send HEADERS, DATA and trailing HEADERS frames on stream ${stream.id}`, { event: "send" });
  }

  /** Stop as a crash would: connections cut, no replies. */
  crash(): void {
    this.stopping = true;
    this.held.drop("the server crashes");
    for (const s of this.sessions) s.destroy();
    this.server.close();
  }

  async close(): Promise<void> {
    this.stopping = true;
    this.held.drop("the server closes");
    for (const s of this.sessions) s.close();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sessions) s.destroy();
    });
  }
}
