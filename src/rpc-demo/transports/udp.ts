/**
 * RPC over UDP: one datagram per call, and the client keeps time.
 *
 * A datagram holds a whole message, so no record marking is needed — but
 * it can be lost, duplicated or reordered, and nothing tells the sender. So
 * the client starts a timer with every request; when it fires without a
 * reply, the request goes out again with the same xid, waiting longer each
 * time, until the call's deadline. That alone is at-least-once: the server
 * may see a call several times. The server's duplicate-request cache turns
 * it into at-most-once by answering repeats from memory.
 */
import * as dgram from "node:dgram";
import { randomInt } from "node:crypto";
import { lookup as systemLookup } from "node:dns/promises";
import { isIP, isIPv4, isIPv6 } from "node:net";
import { callContext, type Dispatcher } from "../call-ids/dispatch";
import type { AnyProcedure } from "../call-ids/registry";
import { codecById, type Codec } from "../codecs/codec";
import { FaultInjector, HeldMessages } from "../faults/faults";
import { hostPort } from "../../server/host-flag";
import { setLongTimeout } from "../../server/long-timeout";
import { Code, RpcError } from "../rpc-error";
import type { Trace } from "../trace";
import { DuplicateRequestCache } from "./duplicate-cache";
import {
  AcceptStat,
  decodeCall,
  decodeReply,
  describeCallHeader,
  describeReplyHeader,
  encodeCall,
  encodeReply,
  isCall,
  outcomeReply,
  callSegments,
  replyResult,
  replySegments,
  type ReplyMessage,
} from "./rpc-header";
import type { CallOptions, ClientOptions, ClientTransport, ServerTransport } from "./transport";

/**
 * The most one UDP datagram can carry, by the family it travels in. Both IP
 * versions count in 16 bits, but IPv4's total length counts its own 20-byte
 * header and the 8-byte UDP header (65,535 − 28 = 65,507), while IPv6's
 * payload length counts what follows its header, the UDP header among it
 * (65,535 − 8 = 65,527; jumbograms aside). A message past the limit is
 * refused before it is sent: the kernel would refuse it too (EMSGSIZE), and
 * nothing would tell the other end.
 */
export const MAX_DATAGRAM = { udp4: 65507, udp6: 65527 } as const;

export type UdpFamily = keyof typeof MAX_DATAGRAM;

/** The limit in words, for narration and errors. */
export function datagramLimit(family: UdpFamily): string {
  return family === "udp4"
    ? "a UDP datagram over IPv4 carries at most 65,507 bytes: 65,535 − 20 of IPv4 header − 8 of UDP header"
    : "a UDP datagram over IPv6 carries at most 65,527 bytes: 65,535 − 8 of UDP header, the IPv6 header not counted";
}

function familyOf(address: string): UdpFamily {
  return isIPv6(address) ? "udp6" : "udp4";
}

/**
 * The family a datagram to `address` travels in, which sets how much it can
 * carry. Mostly the socket's, but an IPv6 socket also reaches IPv4 peers by
 * their IPv4-mapped addresses (::ffff:a.b.c.d: a server on "::" sees its
 * IPv4 callers so), and what it sends them goes out as IPv4, where the
 * smaller limit holds.
 */
function wireFamilyOf(address: string): UdpFamily {
  const mapped = /^::ffff:([\d.]+)$/i.exec(address);
  return mapped && isIPv4(mapped[1]!) ? "udp4" : familyOf(address);
}

/** How a host name becomes an address (default: the system's resolver, as node:net uses for TCP). */
export type HostLookup = (host: string) => Promise<{ address: string; family: number }>;

/**
 * The address a host name stands for, looked up once, in either family, as
 * TCP's connect and listen do: a UDP socket is IPv4 or IPv6 (an IPv4 one
 * cannot bind or reach ::1), so its family comes from the address, which is
 * then what it binds or sends to (a name left to dgram is looked up as IPv4
 * only, and again for every datagram).
 */
async function addressOf(host: string, lookup: HostLookup = systemLookup): Promise<string> {
  return isIP(host) !== 0 ? host : (await lookup(host)).address;
}

function socketFor(address: string): dgram.Socket {
  return dgram.createSocket(familyOf(address));
}

/**
 * Send, or drop silently if the socket has closed meanwhile (a delayed
 * datagram outliving its sender): UDP promises nothing either way. A send
 * the kernel refuses (EACCES for a broadcast address, ENETUNREACH with no
 * route back…) is told only to a callback, here `failed`: without one, Node
 * drops the error (its documentation promises an 'error' event instead),
 * and nobody learns why the datagram never arrived.
 */
function sendQuietly(socket: dgram.Socket, bytes: Buffer, port: number, host: string, failed: (err: Error) => void): void {
  try {
    socket.send(bytes, port, host, (err) => {
      if (err) failed(err);
    });
  } catch {
    // closed: the datagram goes nowhere
  }
}

/**
 * Bind, and from then on keep a listener for the socket's 'error' events
 * (a failed receive, say) for its whole life: the bind-time one, left
 * attached, would swallow the first, and the next, heard by nobody, would
 * end the process. A socket that cannot bind (its port taken, say) is
 * closed before the error goes on: it holds a descriptor all the same.
 */
async function bindSocket(socket: dgram.Socket, port: number, address: string, onError: (err: Error) => void): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, address, () => {
        socket.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    socket.close();
    throw err;
  }
  socket.on("error", onError);
}

export interface UdpServerOptions {
  readonly host?: string;
  readonly port?: number;
  /** Keep replies to answer retransmissions (default true). */
  readonly duplicateCache?: boolean;
  readonly faults?: FaultInjector;
  readonly trace?: Trace;
  readonly onCrash?: () => void;
  readonly lookup?: HostLookup;
}

export class UdpServer implements ServerTransport {
  readonly name = "udp";
  readonly cache = new DuplicateRequestCache();
  /** Replies an injected delay holds up. */
  private readonly held = new HeldMessages();

  private constructor(private readonly socket: dgram.Socket, readonly port: number) {}

  static async listen(dispatcher: Dispatcher, opts: UdpServerOptions = {}): Promise<UdpServer> {
    const address = await addressOf(opts.host ?? "127.0.0.1", opts.lookup);
    const socket = socketFor(address);
    await bindSocket(socket, opts.port ?? 0, address, (err) => {
      opts.trace?.step("server", "transport", `✗ the UDP socket reported an error: ${err.message}`, { notes: ["the server keeps serving"] });
    });
    const self = new UdpServer(socket, socket.address().port);
    const faults = opts.faults ?? new FaultInjector();
    socket.on("message", (msg, rinfo) => void self.handle(msg, rinfo, dispatcher, faults, opts));
    return self;
  }

  private async handle(msg: Buffer, rinfo: dgram.RemoteInfo, dispatcher: Dispatcher, faults: FaultInjector, opts: UdpServerOptions): Promise<void> {
    const trace = opts.trace;
    if (!isCall(msg)) return;
    let call;
    try {
      call = decodeCall(msg);
    } catch {
      return; // not ours; a datagram server just ignores it
    }
    const peer = hostPort(rinfo.address, rinfo.port);
    const codec = codecById(call.codecId);
    trace?.step("server", "transport", `receive a ${msg.length}-byte datagram from ${peer}`, {
      event: "receive",
      notes: describeCallHeader(call, codec?.name ?? "unknown"),
    });
    // A reply the kernel will not send is this call's loss, not the server's: it says so and keeps serving.
    const unsent = (err: Error) =>
      trace?.step("server", "transport", `✗ the reply could not be sent: ${err.message}`, {
        notes: ["nothing went out: the caller waits for it until its deadline", "the server keeps serving"],
      });
    const send = (bytes: Buffer) => faults.deliver("reply", () => sendQuietly(this.socket, bytes, rinfo.port, rinfo.address, unsent), trace, { held: this.held });

    const useCache = opts.duplicateCache !== false;
    const key = DuplicateRequestCache.key(peer, call.xid, call.number.program, call.number.version, call.number.procedure);
    if (useCache) {
      const seen = this.cache.get(key);
      if (seen?.state === "done") {
        this.cache.stats.replayed++;
        trace?.step("server", "transport", "a repeat of a call already answered: resend the cached reply, do not run it again", { event: "cached-reply" });
        send(seen.reply);
        return;
      }
      if (seen?.state === "in-progress") {
        this.cache.stats.ignored++;
        trace?.step("server", "transport", "a repeat of a call still running: ignore it, the reply is coming");
        return;
      }
      this.cache.begin(key);
    }

    let reply: ReplyMessage;
    let typeName: string | undefined; // the results' message type, for an annotated dump
    if (!codec) {
      reply = { xid: call.xid, stat: AcceptStat.GARBAGE_ARGS, message: `unknown codec ${call.codecId}` };
    } else {
      const { ctx, done } = callContext(`udp ${peer}`, call.timeoutMs || undefined);
      const outcome = await dispatcher.invoke({ number: call.number }, codec, call.body, ctx, trace);
      done();
      reply = outcomeReply(call.xid, outcome);
      if (outcome.kind === "ok" && codec.name !== "json") typeName = outcome.procedure.response.fullName;
    }
    if (faults.crashNow()) {
      trace?.step("server", "fault", "✗ the server crashes after running the call, before replying; its cache is lost with it (injected crash)", { event: "crash" });
      this.crash();
      opts.onCrash?.();
      return;
    }
    let bytes = encodeReply(reply);
    // Sized by the caller's family, not the socket's: a server on "::" answers IPv4 callers over IPv4.
    const family = wireFamilyOf(rinfo.address);
    if (bytes.length > MAX_DATAGRAM[family]) {
      // Sent as it is, it would go nowhere and the caller would wait out its deadline: it gets an error it can read instead.
      const message = `the reply of ${bytes.length.toLocaleString("en-US")} bytes does not fit in one UDP datagram: ${datagramLimit(family)}`;
      trace?.step("server", "framing", `the reply would be a ${bytes.length}-byte datagram, too big to send: answer RESOURCE_EXHAUSTED instead`, { notes: [datagramLimit(family)] });
      reply = { xid: call.xid, stat: AcceptStat.ERROR, code: Code.RESOURCE_EXHAUSTED, message };
      typeName = undefined;
      bytes = encodeReply(reply);
    }
    if (useCache) this.cache.finish(key, bytes);
    trace?.step("server", "framing", `put the reply header in front of the results: one ${bytes.length}-byte datagram`, {
      notes: useCache ? ["(the reply is also kept in the duplicate-request cache)"] : [],
      bytes,
      what: "datagram",
      typeName,
      segments: replySegments(reply),
    });
    trace?.step("server", "transport", `send the datagram to ${peer}`, { event: "send" });
    send(bytes);
  }

  crash(): void {
    this.cache.clear();
    this.held.drop("the server crashes");
    this.socket.close();
  }

  async close(): Promise<void> {
    this.held.drop("the server closes");
    await new Promise<void>((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed by a crash
      }
    });
  }
}

export interface UdpClientOptions extends ClientOptions {
  /** First retransmission after this long (default 100 ms); doubles each time. */
  readonly retransmitMs?: number;
  /** Longest wait between retransmissions (default 1000 ms). */
  readonly maxRetransmitMs?: number;
  /** Deadline for calls that set none (default 5000 ms): UDP calls always need one. */
  readonly defaultTimeoutMs?: number;
  readonly lookup?: HostLookup;
}

interface Pending {
  readonly proc: AnyProcedure;
  readonly trace: Trace | undefined;
  settle(result: Buffer | RpcError): void;
}

export class UdpClient implements ClientTransport {
  readonly name = "udp";
  readonly stats = { sent: 0, retransmits: 0 };
  private readonly pending = new Map<number, Pending>();
  private xid = randomInt(0, 0xffffffff);
  /** Requests (and resent ones) an injected delay holds up: they go with the socket. */
  private readonly held = new HeldMessages();

  /** The family the datagrams travel in (IPv4 to an IPv4-mapped address), which sets the largest one. */
  private readonly family: UdpFamily;

  private constructor(
    private readonly socket: dgram.Socket,
    /** The server's address, the host looked up once. */
    private readonly address: string,
    private readonly opts: UdpClientOptions,
  ) {
    this.family = wireFamilyOf(address);
    socket.on("message", (msg) => this.onMessage(msg));
  }

  /** The socket failed on its own (a receive, say): the calls waiting are told; their retransmissions and deadlines go on. */
  private onSocketError(err: Error): void {
    for (const p of this.pending.values()) p.trace?.step("client", "transport", `✗ the UDP socket reported an error: ${err.message}`);
  }

  static async connect(opts: UdpClientOptions): Promise<UdpClient> {
    const host = opts.host ?? "127.0.0.1";
    let address: string;
    try {
      address = await addressOf(host, opts.lookup);
    } catch (err) {
      throw new RpcError(Code.UNAVAILABLE, `cannot look up ${host}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const socket = socketFor(address);
    let client: UdpClient | undefined;
    await bindSocket(socket, 0, isIPv6(address) ? "::" : "0.0.0.0", (err) => client?.onSocketError(err));
    return (client = new UdpClient(socket, address, opts));
  }

  roundTrip(proc: AnyProcedure, codec: Codec, body: Buffer, opts: CallOptions = {}): Promise<Buffer> {
    const trace = opts.trace;
    const xid = (this.xid = (this.xid + 1) >>> 0);
    const timeoutMs = opts.timeoutMs ?? this.opts.defaultTimeoutMs ?? 5000;
    const call = { xid, codecId: codec.id, number: proc.number, timeoutMs, body };
    const datagram = encodeCall(call);
    if (datagram.length > MAX_DATAGRAM[this.family]) {
      const why = `a ${datagram.length.toLocaleString("en-US")}-byte call does not fit in one UDP datagram: ${datagramLimit(this.family)}; nothing was sent`;
      return Promise.reject(new RpcError(Code.RESOURCE_EXHAUSTED, why));
    }
    trace?.step("client", "framing", `put a call header in front of the arguments: one ${datagram.length}-byte datagram`, {
      notes: ["(no length prefix: a datagram arrives whole or not at all)", datagramLimit(this.family)],
      bytes: datagram,
      what: "datagram",
      typeName: codec.name === "json" ? undefined : proc.request.fullName,
      segments: callSegments(call, codec.name),
    });
    const faults = this.opts.faults ?? new FaultInjector();

    return new Promise<Buffer>((resolve, reject) => {
      // The kernel refused the datagram (a broadcast address, say): resending cannot help, so the call ends here.
      const unsent = (err: Error) => {
        if (!this.pending.has(xid)) return; // a late resend of a call already over
        trace?.step("client", "transport", `✗ the call could not be sent: ${err.message}`, { notes: ["nothing went out: resending the same datagram would fail the same way"] });
        done(new RpcError(Code.UNAVAILABLE, `the call could not be sent: ${err.message}`));
      };
      const send = () => {
        this.stats.sent++;
        faults.deliver("request", () => sendQuietly(this.socket, datagram, this.opts.port, this.address, unsent), trace, { held: this.held });
      };
      let wait = this.opts.retransmitMs ?? 100;
      let attempts = 1;
      let retransmit: NodeJS.Timeout | undefined;
      const deadline = setLongTimeout(() => {
        done(new RpcError(Code.DEADLINE_EXCEEDED, `no reply within ${timeoutMs} ms after ${attempts} attempt(s)`));
      }, timeoutMs);
      const done = (result: Buffer | RpcError) => {
        deadline.clear();
        clearTimeout(retransmit);
        this.pending.delete(xid);
        if (result instanceof RpcError) reject(result);
        else resolve(result);
      };
      const arm = () => {
        retransmit = setTimeout(() => {
          attempts++;
          this.stats.retransmits++;
          trace?.step("client", "transport", `no reply after ${wait} ms: send the same datagram again (attempt ${attempts}, same xid)`, { event: "retransmit" });
          wait = Math.min(wait * 2, this.opts.maxRetransmitMs ?? 1000);
          send();
          arm();
        }, wait);
      };
      this.pending.set(xid, { proc, trace, settle: done });
      trace?.step("client", "transport", `send the datagram to ${hostPort(this.address, this.opts.port)}, start the retransmit timer (${wait} ms)`, { event: "send" });
      send();
      arm();
    });
  }

  private onMessage(msg: Buffer): void {
    let reply: ReplyMessage;
    try {
      reply = decodeReply(msg);
    } catch {
      return;
    }
    const p = this.pending.get(reply.xid);
    if (!p) return; // an answer to a retransmission we no longer wait for
    p.trace?.step("client", "transport", `receive a ${msg.length}-byte datagram; xid 0x${reply.xid.toString(16).padStart(8, "0")} matches the call`, {
      event: "receive",
      notes: describeReplyHeader(reply),
    });
    p.settle(replyResult(reply, p.proc.number));
  }

  async close(): Promise<void> {
    this.held.drop("the client's UDP socket closes");
    for (const p of [...this.pending.values()]) p.settle(new RpcError(Code.CANCELLED, "the client was closed"));
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
