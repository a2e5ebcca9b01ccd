/**
 * A gRPC server for unary calls, on our own HTTP/2 (http2/).
 *
 * gRPC over HTTP/2 is small when every call is unary, as every CSI call is:
 * a request is a POST to `/<package>.<Service>/<Method>` with content-type
 * `application/grpc`; its body is one length-prefixed message (a 1-byte
 * compressed flag, a 4-byte big-endian length, the protobuf bytes). The
 * answer is HTTP 200 headers, the reply as one length-prefixed message, and
 * trailers carrying `grpc-status` (0 = OK) — or, for an error, one HEADERS
 * frame holding both ("trailers-only") with `grpc-status` and a
 * percent-encoded `grpc-message`. A deadline arrives as `grpc-timeout`
 * (e.g. `10S`, `500m`; a malformed one is INTERNAL, as in grpc-go); a
 * cancelled call is a reset stream.
 *
 * We used @grpc/grpc-js's server first, then node:http2. Per trivial call
 * node:http2 cost about twice the CPU of reading the frames in JavaScript
 * (its sessions, streams and events; and it loads node:tls, 8.6 MiB), and
 * it refused old kubelets' `:authority`. So the HTTP/2 a gRPC server needs
 * is ours (http2/connection.ts), and this file is the whole of gRPC that
 * the driver needs: routing by path, framing checked strictly
 * (request-framing.ts), gzip and deflate requests, deadlines,
 * cancellation, message size limits. Clients are unchanged: grpc-go
 * (kubelet, the sidecars, csi-sanity) and grpc-js.
 */
import type { Duplex } from "node:stream";
import type * as zlib from "node:zlib";
import { Code } from "../csi/errors";
import { Http2Connection } from "./http2/connection";
import { encodeWithoutIndexing } from "./http2/frames";
import { Gathered } from "./http2/gather";
import type { Stream } from "./http2/stream";
import { atDeadline, wentAtDeadline, type LongTimeout } from "./long-timeout";
import { RequestFraming } from "./request-framing";

/** node:zlib, loaded on the first compressed request message: clients rarely compress. */
const loadZlib = (): typeof zlib => require("node:zlib") as typeof zlib;

/** What a handler is given: the request, its deadline, and word of cancellation. */
export interface UnaryCall<Req> {
  readonly request: Req;
  /** The request message's size on the wire, in bytes (decompressed). */
  readonly requestBytes: number;
  /**
   * The reply message's size on the wire, in bytes, once the callback has
   * been given a reply: the server encodes it there, before the callback
   * returns. 0 until then, and for an error.
   */
  readonly replyBytes: number;
  /**
   * What the client got, once it has been answered: the callback's reply
   * (OK) or error, INTERNAL when the reply could not be encoded, or — when
   * the client stopped waiting before the callback was called —
   * DEADLINE_EXCEEDED or CANCELLED. Undefined until then. A callback called
   * after that sends nothing.
   */
  readonly outcome: CallOutcome | undefined;
  /** The client's deadline, or Infinity when it set none. */
  getDeadline(): Date | number;
  on(event: "cancelled", listener: () => void): void;
}

export interface StatusError {
  code: Code;
  details: string;
}

/** How a call ended for its client, and when (process.hrtime.bigint()). */
export interface CallOutcome extends StatusError {
  at: bigint;
}

export type UnaryHandler<Req, Res> = (call: UnaryCall<Req>, callback: (err: StatusError | null, value?: Res) => void) => void;

/**
 * A service's handlers, keyed as its ts-proto definition keys its methods
 * (lowerCamelCase). Each has its own request and reply types; `never` and
 * `unknown` are what every one of them is assignable to.
 */
export type ServiceHandlers = Record<string, UnaryHandler<never, unknown>>;

/** A ts-proto message codec, as its generic service definitions name them. */
export interface MessageCodec {
  decode(input: Uint8Array): unknown;
  encode(message: unknown): { finish(): Uint8Array };
}

/** A service as ts-proto's `outputServices=generic-definitions` describes it. */
export interface ServiceDefinition {
  /** "csi.v1.Identity": requests come to /<fullName>/<method name>. */
  fullName: string;
  methods: Record<string, { name: string; requestType: MessageCodec; responseType: MessageCodec; requestStream: boolean; responseStream: boolean }>;
}

interface Route {
  decode(bytes: Uint8Array): unknown;
  encode(value: unknown): Uint8Array;
  handler: UnaryHandler<unknown, unknown>;
}

export interface GrpcServerOptions {
  /** Largest request message accepted (bytes, after decompression). */
  maxMessageBytes: number;
  /** A session (connection) failed; the server carries on. */
  onSessionError?(err: Error): void;
  /** A request was answered INTERNAL for broken gRPC framing, never run. */
  onRefused?(problem: string, path: string): void;
  /** A handler threw instead of answering; the call was answered INTERNAL. */
  onHandlerThrew?(err: unknown): void;
}

const GRPC_FIELDS: [string, string][] = [[":status", "200"], ["content-type", "application/grpc"], ["grpc-accept-encoding", "identity,deflate,gzip"]];
const GRPC_HEADERS = encodeWithoutIndexing(GRPC_FIELDS);
const OK_TRAILERS = encodeWithoutIndexing([["grpc-status", "0"]]);
const NOT_POST = encodeWithoutIndexing([[":status", "405"]]);
const NOT_GRPC = encodeWithoutIndexing([[":status", "415"]]);
const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

export class GrpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly connections = new Set<Http2Connection>();
  private inflight = 0;
  private closing = false;

  constructor(private readonly opts: GrpcServerOptions) {}

  /** Serve every method of a service; `impl` holds one handler per method, keyed like the definition. */
  addService(definition: ServiceDefinition, handlers: ServiceHandlers): void {
    for (const [key, m] of Object.entries(definition.methods)) {
      const path = `/${definition.fullName}/${m.name}`;
      const handler = handlers[key] as UnaryHandler<unknown, unknown> | undefined;
      if (!handler) throw new Error(`no handler for ${path}`);
      if (m.requestStream || m.responseStream) throw new Error(`${path} streams; only unary calls are served`);
      this.routes.set(path, { decode: (b) => m.requestType.decode(b), encode: (v) => m.responseType.encode(v).finish(), handler });
    }
  }

  /** Serve HTTP/2 on a connection: a net.Socket or any Duplex. */
  accept(connection: Duplex): void {
    if (this.closing) return void connection.destroy();
    const conn: Http2Connection = new Http2Connection(connection, {
      request: (stream) => this.onStream(conn, stream),
      error: (err) => this.opts.onSessionError?.(err),
      closed: () => this.connections.delete(conn),
    });
    this.connections.add(conn);
  }

  /** Calls started and not yet answered. */
  get callsInFlight(): number {
    return this.inflight;
  }

  /**
   * Stop: every session is told GOAWAY (no new calls) and closes when its
   * calls are answered; after `graceMs` the rest are cut off.
   */
  async close(graceMs: number): Promise<"drained" | "forced"> {
    this.closing = true;
    const all = [...this.connections].map((c) => c.close());
    let timer: NodeJS.Timeout | undefined;
    const forced = new Promise<"forced">((resolve) => (timer = setTimeout(() => resolve("forced"), graceMs)));
    const how = await Promise.race([Promise.all(all).then(() => "drained" as const), forced]);
    clearTimeout(timer);
    for (const c of [...this.connections]) c.destroy();
    return how;
  }

  private onStream(conn: Http2Connection, stream: Stream): void {
    const headers = stream.headers;
    const method = headers.get(":method");
    const contentType = headers.get("content-type");
    if (method !== "POST" || contentType === undefined || !contentType.startsWith("application/grpc")) {
      // Not a gRPC request: answered in HTTP's terms, as gRPC's spec asks.
      conn.answer(stream, method !== "POST" ? NOT_POST : NOT_GRPC);
      return;
    }
    const path = headers.get(":path") ?? "";
    const route = this.routes.get(path);
    const call = new Call(conn, stream);
    stream.onClose = () => call.closed();
    if (!route) {
      call.fail(Code.UNIMPLEMENTED, `the driver does not serve ${path || "an empty path"}`);
      return;
    }
    const encoding = headers.get("grpc-encoding");
    const timeout = headers.get("grpc-timeout");
    const deadline = parseTimeout(timeout);
    if (timeout !== undefined && !deadline) {
      // Not a deadline gRPC can send: refused as grpc-go and grpc-js refuse it, not run as if the client had set none.
      call.fail(Code.INTERNAL, `malformed grpc-timeout ${JSON.stringify(timeout)} (up to 8 digits and one of H M S m u n)`);
      return;
    }
    const framing = new RequestFraming(encoding);
    // Copied as it comes (gather.ts), not kept as views of the reads that carried it.
    const body = new Gathered(this.opts.maxMessageBytes + 5);
    const refuse = (problem: string) => {
      this.opts.onRefused?.(problem, path);
      call.fail(Code.INTERNAL, `the request's gRPC framing is broken: ${problem}`);
    };
    stream.onData = (chunk: Buffer) => {
      if (call.answered) return;
      const problem = framing.push(chunk);
      if (problem) return refuse(problem);
      if (body.length + chunk.length > this.opts.maxMessageBytes + 5) {
        return call.fail(Code.RESOURCE_EXHAUSTED, `the request is larger than the ${this.opts.maxMessageBytes} bytes a message may be`);
      }
      body.add(chunk);
    };
    stream.onEnd = () => {
      if (call.answered) return;
      const problem = framing.end();
      if (problem) return refuse(problem);
      const whole = body.bytes;
      const message = whole.subarray(5);
      if (whole[0] === 1) {
        const unzip = encoding === "gzip" ? loadZlib().gunzip : encoding === "deflate" ? loadZlib().inflate : undefined;
        if (!unzip) return call.fail(Code.UNIMPLEMENTED, `grpc-encoding ${encoding ?? ""} is not supported (identity, deflate, gzip are)`);
        // Decompressing is the call's work too, and goes on if the client resets the stream.
        const workOver = conn.beginWork();
        unzip(message, { maxOutputLength: this.opts.maxMessageBytes }, (err, plain) => {
          if ((err as NodeJS.ErrnoException | null)?.code === "ERR_BUFFER_TOO_LARGE") {
            workOver();
            // As large as a request sent uncompressed that is too large: the same answer.
            return call.fail(Code.RESOURCE_EXHAUSTED, `the request's ${encoding} message is larger than the ${this.opts.maxMessageBytes} bytes a message may be, once decompressed`);
          }
          if (err) {
            workOver();
            return call.fail(Code.INTERNAL, `the request's ${encoding} message could not be decompressed: ${err.message}`);
          }
          this.run(call, route, plain, deadline, workOver);
        });
        return;
      }
      this.run(call, route, message, deadline, conn.beginWork());
    };
  }

  /**
   * Decode the request and run its handler. `workOver` ends the call's work on its connection (Http2Connection.beginWork):
   * when the handler calls back, answered or not, or at once if it is not run.
   */
  private run(call: Call, route: Route, body: Buffer, deadline: Date | undefined, workOver: () => void): void {
    if (call.answered) return workOver();
    let request: unknown;
    try {
      request = route.decode(body);
    } catch (err) {
      workOver();
      return call.fail(Code.INTERNAL, `the request could not be decoded: ${err instanceof Error ? err.message : String(err)}`);
    }
    call.start(request, body.length, deadline);
    this.inflight++;
    call.onAnswered = () => this.inflight--;
    const answer = (err: StatusError | null, value?: unknown) => {
      workOver();
      // Answered already (its deadline passed, or the client cancelled): nothing more goes out.
      if (call.answered) return;
      if (err) return call.fail(err.code, err.details);
      let bytes: Uint8Array;
      try {
        bytes = route.encode(value);
      } catch (e) {
        return call.fail(Code.INTERNAL, `the reply could not be encoded: ${e instanceof Error ? e.message : String(e)}`);
      }
      call.replyBytes = bytes.length;
      call.reply(bytes);
    };
    try {
      route.handler(call, answer);
    } catch (e) {
      // A handler that throws before it answers (the driver's own return promises and answer every error; this is the
      // server's guard, not their way): the call is answered INTERNAL, and the throw goes no further than this call —
      // it would otherwise unwind into the socket's read and end the process.
      this.opts.onHandlerThrew?.(e);
      answer({ code: Code.INTERNAL, details: "the driver failed while handling the call; its log says more" });
    }
  }
}

/** One call: its stream, whether it has been answered, who waits for its cancellation. */
class Call implements UnaryCall<unknown> {
  request: unknown;
  requestBytes = 0;
  replyBytes = 0;
  outcome: CallOutcome | undefined;
  answered = false;
  onAnswered: (() => void) | undefined;
  private deadline: Date | undefined;
  private timer: LongTimeout | undefined;
  private cancelListeners: (() => void)[] = [];
  private cancelled = false;

  constructor(
    private readonly conn: Http2Connection,
    private readonly stream: Stream,
  ) {}

  start(request: unknown, bytes: number, deadline: Date | undefined): void {
    this.request = request;
    this.requestBytes = bytes;
    this.deadline = deadline;
    if (deadline) {
      // As gRPC servers do: when the deadline passes the call is answered
      // DEADLINE_EXCEEDED; the handler learns of it as a cancellation.
      this.timer = atDeadline(deadline, () => {
        this.fail(Code.DEADLINE_EXCEEDED, "the call's deadline passed");
        this.cancel();
      });
    }
  }

  getDeadline(): Date | number {
    return this.deadline ?? Infinity;
  }

  on(_event: "cancelled", listener: () => void): void {
    if (this.cancelled) queueMicrotask(listener);
    else this.cancelListeners.push(listener);
  }

  /** The stream closed; if no answer went out, the client cancelled, or its deadline ended the call (wentAtDeadline). */
  closed(): void {
    if (this.answered) return;
    if (wentAtDeadline(this.deadline?.getTime())) this.settle(Code.DEADLINE_EXCEEDED, "the call's deadline passed");
    else this.settle(Code.CANCELLED, "the client cancelled the call");
    this.cancel();
  }

  reply(message: Uint8Array): void {
    if (!this.settle(Code.OK, "")) return;
    const framed = Buffer.allocUnsafe(5 + message.length);
    framed[0] = 0;
    framed.writeUInt32BE(message.length, 1);
    framed.set(message, 5);
    this.conn.answerWithBody(this.stream, GRPC_HEADERS, framed, OK_TRAILERS);
  }

  fail(code: Code, details: string): void {
    if (!this.settle(code, details)) return;
    this.conn.answer(this.stream, encodeWithoutIndexing([...GRPC_FIELDS, ["grpc-status", String(code)], ["grpc-message", percentEncode(details)]]));
  }

  /** Mark answered once, with the outcome the client gets; false if it already was. */
  private settle(code: Code, details: string): boolean {
    if (this.answered) return false;
    this.answered = true;
    this.outcome = { code, details, at: process.hrtime.bigint() };
    this.timer?.clear();
    this.onAnswered?.();
    return true;
  }

  private cancel(): void {
    this.cancelled = true;
    const listeners = this.cancelListeners;
    this.cancelListeners = [];
    for (const l of listeners) l();
  }
}

/** grpc-timeout: up to 8 digits and a unit (Hours, Minutes, Seconds, milli, micro, nano); undefined for anything else. */
function parseTimeout(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  return new Date(Date.now() + Number(m[1]) * TIMEOUT_UNIT_MS[m[2]!]!);
}

/** grpc-message is percent-encoded: bytes outside printable ASCII, and "%" itself (gRPC's PROTOCOL-HTTP2.md). */
export function percentEncode(s: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(s)) return s;
  let out = "";
  for (const b of Buffer.from(s, "utf8")) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  return out;
}
