/**
 * RPC over TCP: records on a stream, many calls in flight.
 *
 * TCP gives a reliable, ordered byte stream, so nothing is lost or
 * duplicated below us — but it has no message boundaries (record marking
 * puts them back) and, used naively, one call at a time per connection. Here
 * every call carries an xid, the server runs calls as they arrive and
 * replies as each finishes, and the client matches replies to callers by
 * xid. A slow call does not hold up a fast one behind it: the connection is
 * multiplexed.
 */
import * as net from "node:net";
import { randomInt } from "node:crypto";
import { callContext, type CallControl, type Dispatcher } from "../call-ids/dispatch";
import type { AnyProcedure } from "../call-ids/registry";
import { codecById, type Codec } from "../codecs/codec";
import { FaultInjector, HeldMessages } from "../faults/faults";
import { hostPort } from "../../server/host-flag";
import { setLongTimeout, type LongTimeout } from "../../server/long-timeout";
import { Code, RpcError } from "../rpc-error";
import type { Trace } from "../trace";
import { markRecord, RecordReader } from "./record-marking";
import {
  AcceptStat,
  decodeCall,
  decodeReply,
  describeCallHeader,
  describeReplyHeader,
  encodeCall,
  encodeReply,
  outcomeReply,
  callSegments,
  recordMarkSegment,
  replyResult,
  replySegments,
  type ReplyMessage,
} from "./rpc-header";
import type { CallOptions, ClientOptions, ClientTransport, ServerTransport } from "./transport";

export interface TcpServerOptions {
  readonly host?: string;
  readonly port?: number;
  readonly faults?: FaultInjector;
  readonly trace?: Trace;
  /** Called when an injected crash takes the server down. */
  readonly onCrash?: () => void;
}

export class TcpServer implements ServerTransport {
  readonly name = "tcp";
  /** Connections accepted so far (a test checks that calls share one). */
  connectionsAccepted = 0;
  private readonly sockets = new Set<net.Socket>();
  /** Set when the server cuts its own connections (a crash, a shutdown): their close is not the client's doing. */
  private stopping = false;
  /** Connections the server cut for bad bytes. */
  private readonly hungUp = new WeakSet<net.Socket>();
  /** Replies an injected delay holds up. */
  private readonly held = new HeldMessages();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async listen(dispatcher: Dispatcher, opts: TcpServerOptions = {}): Promise<TcpServer> {
    const faults = opts.faults ?? new FaultInjector();
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    // From now on for its whole life (an accept that fails, say): heard by nobody, an 'error' would end the process.
    server.on("error", (err) => {
      opts.trace?.step("server", "transport", `✗ the TCP server reported an error: ${err.message}`, { notes: ["the server keeps serving"] });
    });
    const self = new TcpServer(server, (server.address() as net.AddressInfo).port);
    server.on("connection", (socket) => self.accept(socket, dispatcher, faults, opts));
    return self;
  }

  private accept(socket: net.Socket, dispatcher: Dispatcher, faults: FaultInjector, opts: TcpServerOptions): void {
    this.connectionsAccepted++;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const peer = `tcp ${hostPort(socket.remoteAddress ?? "?", socket.remotePort ?? 0)}`;
    const inflight = new Set<CallControl>();
    const reader = new RecordReader();
    const trace = opts.trace;
    socket.on("close", () => {
      this.sockets.delete(socket);
      if (this.stopping || this.hungUp.has(socket)) {
        for (const call of inflight) call.abort(new RpcError(Code.UNAVAILABLE, "the server closed the connection"));
        return;
      }
      // The client went away with calls still running: its deadline passed (csi-lab rpc call hangs up then), or it cancelled.
      if (inflight.size > 0) {
        trace?.step("server", "transport", `the client closed the TCP connection with ${inflight.size} call${inflight.size === 1 ? "" : "s"} still running`, {
          notes: ["each is told to stop (its AbortSignal fires), and what it did so far stays done; no reply can reach the client"],
        });
      }
      for (const call of inflight) call.cancel("closed the connection");
    });
    socket.on("error", () => socket.destroy());
    socket.on("data", (chunk: Buffer) => {
      trace?.step("server", "transport", `read ${chunk.length} bytes from the TCP connection`, { event: "receive" });
      let records: Buffer[];
      try {
        records = reader.push(chunk);
      } catch {
        this.hangUp(socket); // a broken stream cannot be resynchronised
        return;
      }
      for (const record of records) void this.handle(record, socket, peer, inflight, dispatcher, faults, opts);
    });
  }

  private async handle(
    record: Buffer,
    socket: net.Socket,
    peer: string,
    inflight: Set<CallControl>,
    dispatcher: Dispatcher,
    faults: FaultInjector,
    opts: TcpServerOptions,
  ): Promise<void> {
    const trace = opts.trace;
    let call;
    try {
      call = decodeCall(record);
    } catch {
      this.hangUp(socket);
      return;
    }
    const codec = codecById(call.codecId);
    trace?.step("server", "framing", "the record is complete: take off the record mark, read the call header", {
      notes: describeCallHeader(call, codec?.name ?? "unknown"),
    });
    let reply: ReplyMessage;
    let typeName: string | undefined; // the results' message type, for an annotated dump
    if (!codec) {
      reply = { xid: call.xid, stat: AcceptStat.GARBAGE_ARGS, message: `unknown codec ${call.codecId}` };
    } else {
      const control = callContext(peer, call.timeoutMs || undefined);
      inflight.add(control);
      const outcome = await dispatcher.invoke({ number: call.number }, codec, call.body, control.ctx, trace);
      control.done();
      inflight.delete(control);
      reply = outcomeReply(call.xid, outcome);
      if (outcome.kind === "ok" && codec.name !== "json") typeName = outcome.procedure.response.fullName;
    }
    if (faults.crashNow()) {
      trace?.step("server", "fault", "✗ the server crashes after running the call, before replying (injected crash)", { event: "crash" });
      this.crash();
      opts.onCrash?.();
      return;
    }
    const xid = `xid 0x${call.xid.toString(16).padStart(8, "0")}`;
    if (socket.destroyed) {
      trace?.step("server", "transport", `the reply to ${xid} is not sent: the TCP connection is closed`);
      return;
    }
    const bytes = markRecord(encodeReply(reply));
    trace?.step("server", "framing", "put the reply header and a record mark in front of the results", {
      bytes,
      what: "frame",
      typeName,
      segments: [recordMarkSegment(bytes.length - 4), ...replySegments(reply)],
    });
    trace?.step("server", "transport", `write ${bytes.length} bytes to the TCP connection`, { event: "send" });
    faults.deliver(
      "reply",
      () => {
        // Held up (injected delay) while the client closed the connection: those bytes have nowhere to arrive.
        if (socket.destroyed) return void trace?.step("network", "fault", `✗ the held-up reply to ${xid} comes due, but the TCP connection is closed: it never arrives`);
        socket.write(bytes);
      },
      trace,
      { held: this.held },
    );
  }

  private hangUp(socket: net.Socket): void {
    this.hungUp.add(socket);
    socket.destroy();
  }

  /** Stop as a crash would: every connection cut, nothing sent. */
  crash(): void {
    this.stopping = true;
    this.held.drop("the server crashes");
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }

  async close(): Promise<void> {
    this.stopping = true;
    this.held.drop("the server closes");
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

interface Pending {
  readonly proc: AnyProcedure;
  readonly trace: Trace | undefined;
  resolve(body: Buffer): void;
  reject(err: RpcError): void;
}

export interface TcpClientOptions extends ClientOptions {
  /** Split records into fragments of this many bytes (to show record marking at work). */
  readonly maxFragment?: number;
}

export class TcpClient implements ClientTransport {
  readonly name = "tcp";
  private readonly pending = new Map<number, Pending>();
  private xid = randomInt(0, 0xffffffff);
  private closed: RpcError | undefined;
  /** Requests an injected delay holds up: they go with the connection. */
  private readonly held = new HeldMessages();

  private constructor(
    private readonly socket: net.Socket,
    private readonly opts: TcpClientOptions,
  ) {
    const reader = new RecordReader();
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      let records: Buffer[];
      try {
        records = reader.push(chunk);
      } catch (err) {
        this.fail(new RpcError(Code.INTERNAL, `bad record from the server: ${String(err)}`));
        return;
      }
      for (const r of records) this.onRecord(r, chunk.length);
    });
    socket.on("error", (err) => this.fail(new RpcError(Code.UNAVAILABLE, `connection failed: ${err.message}`)));
    socket.on("close", () => {
      this.held.drop("the TCP connection closes");
      this.fail(new RpcError(Code.UNAVAILABLE, "the server closed the connection"));
    });
  }

  static connect(opts: TcpClientOptions): Promise<TcpClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(opts.port, opts.host ?? "127.0.0.1");
      const failed = (err: Error) => reject(new RpcError(Code.UNAVAILABLE, `cannot connect: ${err.message}`));
      socket.once("connect", () => {
        socket.off("error", failed); // the client's own listener takes over
        resolve(new TcpClient(socket, opts));
      });
      socket.once("error", failed);
    });
  }

  /** Calls waiting for their reply right now. */
  get inFlight(): number {
    return this.pending.size;
  }

  roundTrip(proc: AnyProcedure, codec: Codec, body: Buffer, opts: CallOptions = {}): Promise<Buffer> {
    if (this.closed) return Promise.reject(this.closed);
    const trace = opts.trace;
    const xid = (this.xid = (this.xid + 1) >>> 0);
    const call = { xid, codecId: codec.id, number: proc.number, timeoutMs: opts.timeoutMs ?? 0, body };
    const frame = markRecord(encodeCall(call), this.opts.maxFragment);
    trace?.step("client", "framing", "put a call header and a record mark in front of the arguments", {
      bytes: frame,
      what: "frame",
      typeName: codec.name === "json" ? undefined : proc.request.fullName,
      segments: this.opts.maxFragment ? [] : [recordMarkSegment(frame.length - 4), ...callSegments(call, codec.name)],
    });
    return new Promise<Buffer>((resolve, reject) => {
      let timer: LongTimeout | undefined;
      const settle = () => {
        timer?.clear();
        this.pending.delete(xid);
      };
      this.pending.set(xid, {
        proc,
        trace,
        resolve: (b) => (settle(), resolve(b)),
        reject: (e) => (settle(), reject(e)),
      });
      if (opts.timeoutMs !== undefined) {
        timer = setLongTimeout(() => {
          settle();
          trace?.step("client", "transport", `no reply within the ${opts.timeoutMs} ms deadline: give up`, { event: "give-up" });
          reject(new RpcError(Code.DEADLINE_EXCEEDED, `deadline of ${opts.timeoutMs} ms exceeded waiting for the reply`));
        }, opts.timeoutMs);
      }
      const faults = this.opts.faults ?? new FaultInjector();
      trace?.step("client", "transport", `write ${frame.length} bytes to the TCP connection`, { event: "send" });
      faults.deliver("request", () => this.socket.write(frame), trace, { held: this.held });
    });
  }

  private onRecord(record: Buffer, chunkBytes: number): void {
    let reply: ReplyMessage;
    try {
      reply = decodeReply(record);
    } catch (err) {
      this.fail(new RpcError(Code.INTERNAL, `bad reply from the server: ${String(err)}`));
      return;
    }
    const p = this.pending.get(reply.xid);
    if (!p) return; // a late or duplicated reply: its caller has gone
    p.trace?.step("client", "transport", `read ${chunkBytes} bytes from the TCP connection`, { event: "receive" });
    p.trace?.step("client", "framing", `match the reply to its call by xid 0x${reply.xid.toString(16).padStart(8, "0")}`, {
      notes: describeReplyHeader(reply),
    });
    const result = replyResult(reply, p.proc.number);
    if (result instanceof RpcError) p.reject(result);
    else p.resolve(result);
  }

  private fail(err: RpcError): void {
    this.closed ??= err;
    for (const p of [...this.pending.values()]) p.reject(err);
  }

  async close(): Promise<void> {
    this.closed ??= new RpcError(Code.CANCELLED, "the client was closed");
    this.held.drop("the TCP connection closes");
    this.socket.destroy();
    for (const p of [...this.pending.values()]) p.reject(this.closed);
  }
}
