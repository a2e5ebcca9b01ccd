/**
 * A gRPC client written on node:http2: the other half of http2-server.ts.
 *
 * One HTTP/2 session per client; each call opens a stream, sends the
 * request headers and one length-prefixed message, and reads headers, data
 * and trailers back. The status comes from the trailers (or from the
 * headers, when the server answered "trailers-only"). Our deadline is sent
 * as grpc-timeout and also kept here: when it passes, the stream is reset
 * (RST_STREAM CANCEL), which tells the server to stop.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import type { AnyProcedure } from "../call-ids/registry";
import type { Codec } from "../codecs/codec";
import { FaultInjector, HeldMessages } from "../faults/faults";
import { hostPort } from "../../server/host-flag";
import { setLongTimeout } from "../../server/long-timeout";
import { Code, RpcError } from "../rpc-error";
import type { Trace } from "../trace";
import { codeForHttpStatus, decodeGrpcMessage, encodeTimeout, frameMessage, MessageDeframer, prefixSegments } from "./grpc-framing";
import { headerLines } from "./http2-server";
import { FrameAnnotator, tappedSocket } from "./http2-wire";
import type { CallOptions, ClientOptions, ClientTransport } from "./transport";

export interface Http2ClientOptions extends Partial<ClientOptions> {
  /** Connect to a unix socket instead of host:port (a CSI driver's endpoint). */
  readonly socketPath?: string;
  readonly authority?: string;
  /** Show the HTTP/2 frames this connection exchanges on each call's trace (the walkthrough). */
  readonly wire?: boolean;
}

/** Everything a unary gRPC call brought back, for narration. */
export interface UnaryResult {
  readonly body: Buffer;
  readonly frame: Buffer;
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
}

export class Http2Client implements ClientTransport {
  readonly name = "http2";
  /** The call whose trace gets the wire's bytes (the walkthrough makes one call at a time). */
  private current: { trace: Trace; requestType?: string; responseType?: string } | undefined;
  /** Requests an injected delay holds up (their streams not yet opened): they go with the connection. */
  private readonly held = new HeldMessages();

  private constructor(
    private readonly session: http2.ClientHttp2Session,
    private readonly authority: string,
    private readonly faults: FaultInjector,
  ) {
    session.on("error", () => undefined); // surfaced per call, through the streams
    session.on("close", () => this.held.drop("the HTTP/2 connection closes"));
  }

  static connect(opts: Http2ClientOptions): Promise<Http2Client> {
    const host = opts.host ?? "127.0.0.1";
    const authority = opts.authority ?? (opts.socketPath ? "localhost" : hostPort(host, opts.port!));
    let client: Http2Client | undefined;
    const annotators = { out: new FrameAnnotator(true), in: new FrameAnnotator(false) };
    const socket = () => (opts.socketPath ? net.connect(opts.socketPath) : net.connect(opts.port!, host));
    const tapped = () => tappedSocket(socket(), (direction, chunk) => client?.onWire(direction, annotators[direction].push(chunk)));
    const session = opts.socketPath || opts.wire
      ? http2.connect(`http://${opts.socketPath ? authority : hostPort(host, opts.port!)}`, { createConnection: opts.wire ? tapped : socket })
      : http2.connect(`http://${hostPort(host, opts.port!)}`);
    client = new Http2Client(session, authority, opts.faults ?? new FaultInjector());
    return new Promise((resolve, reject) => {
      const failed = (err: Error) => reject(new RpcError(Code.UNAVAILABLE, `cannot connect: ${err.message}`));
      session.once("connect", () => {
        session.off("error", failed); // the client's own listener stays
        resolve(client!);
      });
      session.once("error", failed);
    });
  }

  async roundTrip(proc: AnyProcedure, codec: Codec, body: Buffer, opts: CallOptions = {}): Promise<Buffer> {
    const protobuf = codec.name !== "json";
    const types = protobuf ? { requestType: proc.request.fullName, responseType: proc.response.fullName } : {};
    return (await this.unary(proc.path, codec.contentType, body, { ...opts, ...types })).body;
  }

  /** Bytes the tap saw: a step on the current call's trace, every frame named. */
  private onWire(direction: "out" | "in", chunk: ReturnType<FrameAnnotator["push"]>): void {
    const call = this.current;
    if (!call || !chunk) return;
    const typeName = direction === "out" ? call.requestType : call.responseType;
    call.trace.step("client", "transport", `${direction === "out" ? "write" : "read"} ${chunk.bytes.length} bytes ${direction === "out" ? "to" : "from"} the TCP connection: ${chunk.frames.join(", ")}`, {
      bytes: chunk.bytes,
      what: "frame",
      typeName,
      segments: chunk.segments,
      notes: chunk.notes,
    });
  }

  /** One unary call to any gRPC path: used for the playground and for the CSI driver. */
  unary(path: string, contentType: string, body: Buffer, opts: CallOptions & { requestType?: string; responseType?: string } = {}): Promise<UnaryResult> {
    const trace = opts.trace;
    this.current = trace ? { trace, requestType: opts.requestType, responseType: opts.responseType } : undefined;
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":scheme": "http",
      ":authority": this.authority,
      ":path": path,
      "content-type": contentType,
      te: "trailers",
      "user-agent": "csi-lab-rpc-playground",
    };
    if (opts.timeoutMs !== undefined) headers["grpc-timeout"] = encodeTimeout(opts.timeoutMs);
    const frame = frameMessage(body);
    // One step per frame, in the order they go out: HEADERS opens the stream, DATA follows it.
    trace?.step("client", "framing", "request HEADERS: open an HTTP/2 stream, a POST to the call ID", { notes: headerLines(headers) });
    trace?.step("client", "framing", `request DATA (END_STREAM): a 5-byte prefix, then ${body.length} bytes of message`, {
      bytes: frame,
      what: "frame",
      typeName: opts.requestType,
      segments: prefixSegments(frame),
    });

    return new Promise<UnaryResult>((resolve, reject) => {
      let settled = false;
      const streams: http2.ClientHttp2Stream[] = [];
      const finish = (r: UnaryResult | RpcError) => {
        if (settled) return;
        settled = true;
        timer?.clear();
        for (const s of streams) if (!s.closed) s.close(http2.constants.NGHTTP2_CANCEL);
        if (r instanceof RpcError) reject(r);
        else resolve(r);
      };
      const timer =
        opts.timeoutMs !== undefined
          ? setLongTimeout(() => {
              trace?.step("client", "transport", `no reply within the ${opts.timeoutMs} ms deadline: reset the stream (RST_STREAM CANCEL)`, { event: "give-up" });
              finish(new RpcError(Code.DEADLINE_EXCEEDED, `deadline of ${opts.timeoutMs} ms exceeded`));
            }, opts.timeoutMs)
          : undefined;

      const open = () => {
        if (settled) return;
        if (this.session.closed || this.session.destroyed) {
          finish(new RpcError(Code.UNAVAILABLE, "the HTTP/2 connection is closed"));
          return;
        }
        const stream = this.session.request(headers);
        streams.push(stream);
        this.watch(stream, trace, finish);
        stream.end(frame);
      };
      trace?.step("client", "transport", "send HEADERS and DATA (END_STREAM) frames", { event: "send" });
      this.faults.deliver("request", open, trace, { held: this.held });
    });
  }

  private watch(stream: http2.ClientHttp2Stream, trace: Trace | undefined, finish: (r: UnaryResult | RpcError) => void): void {
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const deframer = new MessageDeframer();
    const told = new InWireOrder();
    stream.on("response", (h) => {
      headers = h;
      told.headers(() => trace?.step("client", "transport", `response HEADERS on stream ${stream.id}`, { notes: headerLines(h), event: "receive" }));
    });
    let narrated = 0;
    stream.on("data", (chunk: Buffer) => {
      try {
        deframer.push(chunk);
      } catch (err) {
        finish(RpcError.from(err));
        return;
      }
      for (; narrated < deframer.messages.length; narrated++) {
        const m = deframer.messages[narrated]!;
        told.data(() =>
          trace?.step("client", "framing", `response DATA: strip the 5-byte prefix, ${m.body.length} bytes of message`, { bytes: m.frame, what: "frame", segments: prefixSegments(m.frame) }),
        );
      }
    });
    stream.on("end", () => told.end());
    stream.on("trailers", (t) => {
      trailers = t;
      told.trailers(() => trace?.step("client", "framing", "trailers: the call's status", { notes: headerLines(t) }));
    });
    stream.on("error", (err) => finish(new RpcError(Code.UNAVAILABLE, `stream failed: ${err.message}`)));
    stream.on("close", () => {
      told.close();
      const httpStatus = Number(headers[":status"] ?? 0);
      if (httpStatus === 0) {
        finish(new RpcError(Code.UNAVAILABLE, `the stream closed without a response (code ${stream.rstCode})`));
        return;
      }
      // grpc-status in the trailers, or in the headers for a trailers-only answer
      const rawStatus = (trailers["grpc-status"] ?? headers["grpc-status"]) as string | undefined;
      if (rawStatus === undefined) {
        const code = httpStatus === 200 ? Code.INTERNAL : codeForHttpStatus(httpStatus);
        finish(new RpcError(code, `no grpc-status from the server (HTTP ${httpStatus})`));
        return;
      }
      const code = Number(rawStatus) as Code;
      const message = decodeGrpcMessage(String(trailers["grpc-message"] ?? headers["grpc-message"] ?? ""));
      if (code !== Code.OK) {
        finish(new RpcError(code, message));
        return;
      }
      const msg = deframer.messages[0];
      if (deframer.messages.length !== 1 || !msg) {
        finish(new RpcError(Code.INTERNAL, `a unary reply carries exactly one message, not ${deframer.messages.length}`));
        return;
      }
      finish({ body: msg.body, frame: msg.frame, headers, trailers });
    });
  }

  async close(): Promise<void> {
    this.held.drop("the HTTP/2 connection closes");
    await new Promise<void>((resolve) => {
      // A connection that broke (a reset, say) is destroyed without being closed: close() would never call back.
      if (this.session.closed || this.session.destroyed) return resolve();
      this.session.close(() => resolve());
      setTimeout(() => this.session.destroy(), 200).unref();
    });
  }
}

/**
 * A reply's steps in the order its frames came. node:http2 hands a stream
 * its DATA as soon as it is read, but its HEADERS and trailers a tick later
 * (process.nextTick), so when HEADERS and DATA arrive in one read, the DATA
 * event comes first. Within a stream HTTP/2 fixes the order — HEADERS, then
 * DATA, then the trailing HEADERS — so a DATA step waits for the HEADERS
 * step, and the trailers for the stream's last DATA (its end).
 */
class InWireOrder {
  private headersTold = false;
  private ended = false;
  private readonly dataWaiting: (() => void)[] = [];
  private trailersWaiting: (() => void) | undefined;

  headers(tell: () => void): void {
    tell();
    this.headersTold = true;
    for (const t of this.dataWaiting.splice(0)) t();
    this.tellTrailers();
  }

  data(tell: () => void): void {
    if (this.headersTold) tell();
    else this.dataWaiting.push(tell);
  }

  trailers(tell: () => void): void {
    this.trailersWaiting = tell;
    this.tellTrailers();
  }

  /** No more DATA: the trailers, if they came, may be told. */
  end(): void {
    this.ended = true;
    this.tellTrailers();
  }

  /** The stream closed: whatever still waits is told, in its order. */
  close(): void {
    this.headersTold = this.ended = true;
    for (const t of this.dataWaiting.splice(0)) t();
    this.tellTrailers();
  }

  private tellTrailers(): void {
    const t = this.trailersWaiting;
    if (!t || !this.headersTold || !this.ended) return;
    this.trailersWaiting = undefined;
    t();
  }
}
