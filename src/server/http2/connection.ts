/**
 * The server side of one HTTP/2 connection (RFC 9113), over any byte
 * stream: a unix socket, TCP, or a Duplex in tests.
 *
 * We speak first: our SETTINGS, and a WINDOW_UPDATE that opens the
 * connection's window to what we allow. The client sends the 24-byte
 * preface and its own SETTINGS, which must be its first frame; every
 * SETTINGS is ACKed, and the client's INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE
 * and HEADER_TABLE_SIZE are applied to what we send. Then requests: each a
 * stream (stream.ts) opened by a header block on a new odd id, HPACK-
 * decoded in order (hpack.ts), and its body's DATA frames. A request
 * whose header fields break HTTP/2's rules is reset unanswered (stream.ts).
 *
 * What we advertise, and what the client's SETTINGS change, are
 * settings.ts's.
 *
 * Flow control, both ways: DATA we receive counts against our windows, and
 * a client that sends past them is refused (FLOW_CONTROL_ERROR; receive-
 * window.ts); DATA we send is cut to the client's MAX_FRAME_SIZE and
 * windows, and what does not fit waits for its WINDOW_UPDATE. A connection error answers GOAWAY with
 * its code and closes; a stream error resets the stream. `:authority` is
 * not judged: over a unix socket there is no host, and old kubelets send
 * the socket's path there.
 *
 * What we send, and its flow control, is the outbox's (outbox.ts); when
 * we stop reading the client, the read gate's (read-gate.ts).
 */
import type { Duplex } from "node:stream";
import {
  encodeWithoutIndexing, ERROR_CODE, errorName, FLAG, frame, FrameReader, frameSizeError, goaway, MAX_WINDOW, protocolError, rstStream, TYPE,
  unpad, windowUpdate, type H2Error, type HeaderBlock,
} from "./frames";
import { HpackDecoder, HpackError } from "./hpack";
import { DEFAULT_WINDOW, Outbox } from "./outbox";
import { ReadGate } from "./read-gate";
import { ReceiveWindow } from "./receive-window";
import { INITIAL_WINDOW, MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, OUR_SETTINGS, PeerSettings, SETTINGS_ACK, TABLE_SIZE } from "./settings";
import { malformed, Stream } from "./stream";

/** After our GOAWAY, how long a client may keep the connection open before it is cut. */
const LINGER_MS = 1000;

const HEADERS_TOO_LARGE = encodeWithoutIndexing([[":status", "431"]]);
/** Returned by the frame handlers once the connection is over: stop reading, nothing more to say. */
const OVER: H2Error = { code: -1, reason: "the connection is over" };

export interface ConnectionEvents {
  /** A request's header block arrived: set the stream's callbacks; its body follows. Its call's work is counted with beginWork. */
  request(stream: Stream): void;
  /** The connection failed: the client broke HTTP/2, the socket failed, or the client went away with an error. */
  error(err: Error): void;
  /** The connection is over; every stream on it has been closed. */
  closed(): void;
}

export class Http2Connection {
  private readonly reader: FrameReader;
  private readonly hpack = new HpackDecoder(TABLE_SIZE);
  private readonly streams = new Map<number, Stream>();
  private lastStreamId = 0;
  /** Streams we reset lately, oldest first (a bounded number). */
  private readonly resetByUs = new Set<number>();
  private settingsSeen = false;
  private readonly peer = new PeerSettings();
  private readonly recv = new ReceiveWindow(INITIAL_WINDOW);
  private readonly outbox: Outbox;
  private readonly gate: ReadGate;
  private reading = false;
  private flushQueued = false;
  /** No new streams: we sent GOAWAY, or the client did (NO_ERROR). The connection ends when its streams have. */
  private goingAway = false;
  private sentGoaway = false;
  private over = false;
  private readonly whenOver: (() => void)[] = [];

  constructor(
    private readonly socket: Duplex,
    private readonly events: ConnectionEvents,
  ) {
    this.outbox = new Outbox(socket, (s) => this.localEnd(s));
    this.reader = new FrameReader({ frame: (t, f, id, p) => this.onFrame(t, f, id, p), headers: (h) => this.onHeaders(h) });
    this.gate = new ReadGate(socket, () => this.reader.stop(), () => this.readKept());
    socket.on("data", (chunk: Buffer) => this.onBytes(chunk));
    socket.on("end", () => this.end(true));
    socket.on("error", (err) => {
      if (!this.over) this.events.error(err);
      this.end(true);
    });
    socket.on("close", () => this.end(true));
    this.push(OUR_SETTINGS, windowUpdate(0, INITIAL_WINDOW - DEFAULT_WINDOW));
    this.flush();
  }

  /** Answer with headers alone (END_STREAM): an error's trailers-only answer, or an HTTP status. */
  answer(stream: Stream, headerBlock: Buffer): void {
    if (!this.startAnswer(stream)) return;
    this.outbox.pushHeaders(headerBlock, FLAG.END_STREAM, stream.id);
    this.localEnd(stream);
    this.flushSoon();
  }

  /** Answer with headers, a body (cut to the client's windows and frame size) and trailers. */
  answerWithBody(stream: Stream, headerBlock: Buffer, body: Buffer, trailerBlock: Buffer): void {
    if (!this.startAnswer(stream)) return;
    this.outbox.pushHeaders(headerBlock, 0, stream.id);
    this.outbox.sendBody(stream, body, trailerBlock);
    this.flushSoon();
  }

  /**
   * Stop taking requests: GOAWAY (NO_ERROR, naming the last stream we
   * took); the connection closes once its open streams are answered.
   * Resolves when it is over.
   */
  close(): Promise<void> {
    if (this.over) return Promise.resolve();
    const done = new Promise<void>((resolve) => this.whenOver.push(resolve));
    this.goingAway = true;
    this.sendGoaway(ERROR_CODE.NO_ERROR, "");
    this.flush();
    this.endIfDrained();
    return done;
  }

  /**
   * A call's work has begun: its request is being decompressed, or its handler runs. Until the function returned is
   * called, the call counts against MAX_CONCURRENT_STREAMS, its stream open or not: a client may send a whole request
   * and reset its stream at once, again and again ("rapid reset", CVE-2023-44487), and each handler would go on. At
   * that many the connection stops reading the client until one ends (Go's server, likewise, runs no more handlers).
   */
  beginWork(): () => void {
    return this.gate.beginWork();
  }

  /** Cut the connection now; open streams are closed unanswered. */
  destroy(): void {
    this.end(true);
  }

  private onBytes(chunk: Buffer): void {
    if (!this.over) this.read(() => this.reader.push(chunk));
  }

  /** The read gate opened: the frames kept while it was held. */
  private readKept(): void {
    if (!this.over) this.read(() => this.reader.resume());
  }

  private read(frames: () => H2Error | undefined): void {
    this.reading = true;
    const err = frames();
    this.reading = false;
    if (err && err !== OVER) return this.fail(err);
    this.flush();
    if (!this.over) this.gate.holdIfBacklogged();
  }

  private onFrame(type: number, flags: number, id: number, payload: Buffer): H2Error | void {
    if (this.over) return OVER;
    if (!this.settingsSeen && (type !== TYPE.SETTINGS || flags & FLAG.ACK)) {
      return protocolError(`the client's first frame is of type ${type}, not SETTINGS`);
    }
    switch (type) {
      case TYPE.DATA:
        return this.onData(flags, id, payload);
      case TYPE.SETTINGS:
        return this.onSettings(flags, id, payload);
      case TYPE.WINDOW_UPDATE:
        return this.onWindowUpdate(id, payload);
      case TYPE.RST_STREAM: {
        if (id === 0) return protocolError("RST_STREAM on stream 0");
        if (payload.length !== 4) return frameSizeError("RST_STREAM", payload.length);
        const s = this.streams.get(id);
        if (s) this.closeStream(s);
        else if (this.idle(id)) return protocolError(`RST_STREAM on stream ${id}, never opened`);
        return;
      }
      case TYPE.PING:
        if (id !== 0) return protocolError("PING on a stream");
        if (payload.length !== 8) return frameSizeError("PING", payload.length);
        if (!(flags & FLAG.ACK)) this.push(frame(TYPE.PING, FLAG.ACK, 0, Buffer.from(payload)));
        return;
      case TYPE.GOAWAY:
        if (id !== 0) return protocolError("GOAWAY on a stream");
        if (payload.length < 8) return frameSizeError("GOAWAY", payload.length);
        return this.onGoaway(payload.readUInt32BE(4));
      case TYPE.PRIORITY: {
        // Priorities are advice we do not take; only their shape is checked. A stream we reset is closed, its call cancelled.
        if (id === 0) return protocolError("PRIORITY on stream 0");
        if (payload.length === 5) return;
        // No RST_STREAM may go to an idle stream (RFC 9113 §6.4): there the error is the connection's, as Go's server makes it.
        if (this.idle(id)) return frameSizeError(`a PRIORITY on idle stream ${id}`, payload.length);
        const s = this.streams.get(id);
        return void (s ? this.resetStream(s, ERROR_CODE.FRAME_SIZE_ERROR) : this.reset(id, ERROR_CODE.FRAME_SIZE_ERROR));
      }
      case TYPE.PUSH_PROMISE:
        return protocolError("PUSH_PROMISE from a client");
      default:
        return; // unknown frame types are ignored (RFC 9113 §4.1)
    }
  }

  private onHeaders(h: HeaderBlock): H2Error | void {
    if (this.over) return OVER;
    if (!this.settingsSeen) return protocolError("a request before the client's SETTINGS");
    const id = h.streamId;
    if (id % 2 === 0) return protocolError(`a request on stream ${id}: a client's stream ids are odd`);
    let decoded;
    try {
      decoded = this.hpack.decode(h.block, MAX_HEADER_LIST_SIZE);
    } catch (err) {
      if (err instanceof HpackError) return { code: ERROR_CODE.COMPRESSION_ERROR, reason: err.message };
      throw err;
    }
    const open = this.streams.get(id);
    if (open) {
      // A second header block: the request's trailers, which must end it. Their content means nothing to gRPC.
      if (open.remoteEnded) return void this.resetStream(open, ERROR_CODE.STREAM_CLOSED);
      if (!(h.flags & FLAG.END_STREAM) || malformed(decoded.fields, true)) return void this.resetStream(open, ERROR_CODE.PROTOCOL_ERROR);
      return void this.remoteEnd(open);
    }
    if (id <= this.lastStreamId) {
      // Trailers already on their way when we reset the stream are ignored (their block decoded all the same); otherwise a
      // client's new stream ids must increase.
      return this.resetByUs.has(id) ? undefined : protocolError(`a request on stream ${id}, after stream ${this.lastStreamId}`);
    }
    this.lastStreamId = id;
    const ended = (h.flags & FLAG.END_STREAM) !== 0;
    if (this.goingAway || this.streams.size >= MAX_CONCURRENT_STREAMS) return void this.reset(id, ERROR_CODE.REFUSED_STREAM);
    if (decoded.tooLarge) {
      this.outbox.pushHeaders(HEADERS_TOO_LARGE, FLAG.END_STREAM, id);
      if (!ended) this.reset(id, ERROR_CODE.NO_ERROR);
      return;
    }
    if (malformed(decoded.fields, false)) return void this.reset(id, ERROR_CODE.PROTOCOL_ERROR);
    const headers = new Map<string, string>();
    for (const [name, value] of decoded.fields) if (!headers.has(name)) headers.set(name, value);
    const stream = new Stream(id, headers, this.peer.initialWindow, INITIAL_WINDOW);
    stream.remoteEnded = ended;
    this.streams.set(id, stream);
    this.events.request(stream);
    if (ended && !stream.closed) stream.onEnd?.();
  }

  private onData(flags: number, id: number, payload: Buffer): H2Error | void {
    if (id === 0) return protocolError("DATA on stream 0");
    // Flow control counts the whole payload, padding included.
    const len = payload.length;
    if (!this.recv.take(len)) return { code: ERROR_CODE.FLOW_CONTROL_ERROR, reason: `DATA past the connection's window (${this.recv.available} bytes)` };
    const body = unpad(flags, payload);
    if (!body) return protocolError("a DATA frame whose padding is longer than itself");
    const s = this.streams.get(id);
    if (!s) {
      if (this.idle(id)) return protocolError(`DATA on stream ${id}, never opened`);
      // What was on its way when we reset the stream is dropped; on a stream both sides ended, DATA is an error.
      if (!this.resetByUs.has(id)) this.reset(id, ERROR_CODE.STREAM_CLOSED);
      return;
    }
    if (s.remoteEnded) return void this.resetStream(s, ERROR_CODE.STREAM_CLOSED);
    if (!s.recv.take(len)) return void this.resetStream(s, ERROR_CODE.FLOW_CONTROL_ERROR);
    const ended = (flags & FLAG.END_STREAM) !== 0;
    s.remoteEnded = ended;
    if (body.length > 0) s.onData?.(body);
    if (s.closed) return;
    if (ended) return void s.onEnd?.();
    const update = s.answered ? undefined : s.recv.giveBack(id);
    if (update) this.push(update);
  }

  private onSettings(flags: number, id: number, payload: Buffer): H2Error | void {
    if (id !== 0) return protocolError("SETTINGS on a stream");
    if (flags & FLAG.ACK) return payload.length === 0 ? undefined : frameSizeError("a SETTINGS ACK", payload.length);
    const err = this.peer.apply(payload, this.outbox, this.streams.values());
    if (err) return err;
    this.settingsSeen = true;
    this.push(SETTINGS_ACK);
    this.outbox.pumpAll();
  }

  private onWindowUpdate(id: number, payload: Buffer): H2Error | void {
    if (payload.length !== 4) return frameSizeError("WINDOW_UPDATE", payload.length);
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (id === 0) {
      if (increment === 0) return protocolError("a connection WINDOW_UPDATE of 0");
      if (this.outbox.sendWindow + increment > MAX_WINDOW) return { code: ERROR_CODE.FLOW_CONTROL_ERROR, reason: "the connection's window past 2^31-1" };
      this.outbox.sendWindow += increment;
      return void this.outbox.pumpAll();
    }
    const s = this.streams.get(id);
    if (!s) return this.idle(id) ? protocolError(`WINDOW_UPDATE on stream ${id}, never opened`) : undefined;
    if (increment === 0) return void this.resetStream(s, ERROR_CODE.PROTOCOL_ERROR);
    if (s.sendWindow + increment > MAX_WINDOW) return void this.resetStream(s, ERROR_CODE.FLOW_CONTROL_ERROR);
    s.sendWindow += increment;
    this.outbox.pump(s);
  }

  /**
   * The client's GOAWAY: with NO_ERROR, open calls finish and no more come (as node:http2 did), and our own GOAWAY names
   * the last stream we took before we close (RFC 9113 §6.8, as Go's server does); with an error, they end now.
   */
  private onGoaway(code: number): H2Error | void {
    if (code === ERROR_CODE.NO_ERROR) {
      this.goingAway = true;
      this.sendGoaway(ERROR_CODE.NO_ERROR, "");
      this.endIfDrained();
      return;
    }
    this.events.error(new Error(`the client ended the connection with GOAWAY ${errorName(code)}`));
    this.end(true);
    return OVER;
  }

  /**
   * A stream still idle (RFC 9113 §5.1): an odd id above the last the client opened, or any even id, which only a
   * server opens and we never do. On an idle stream only HEADERS and PRIORITY may come; anything else is the connection's
   * error.
   */
  private idle(id: number): boolean {
    return id > this.lastStreamId || id % 2 === 0;
  }

  private startAnswer(stream: Stream): boolean {
    if (stream.closed || stream.answered || this.over) return false;
    stream.answered = true;
    return true;
  }

  /** We sent END_STREAM. A client still sending is told to stop (RST_STREAM NO_ERROR), as gRPC servers do. */
  private localEnd(s: Stream): void {
    if (!s.remoteEnded) this.reset(s.id, ERROR_CODE.NO_ERROR);
    this.closeStream(s);
  }

  /** RST_STREAM, remembered for a while: the client may have sent more on the stream before it reads the reset. */
  private reset(id: number, code: number): void {
    this.push(rstStream(id, code));
    this.resetByUs.add(id);
    if (this.resetByUs.size > MAX_CONCURRENT_STREAMS) this.resetByUs.delete(this.resetByUs.values().next().value!);
  }

  private remoteEnd(s: Stream): void {
    s.remoteEnded = true;
    s.onEnd?.();
  }

  private resetStream(s: Stream, code: number): void {
    this.reset(s.id, code);
    this.closeStream(s);
  }

  private closeStream(s: Stream): void {
    if (s.closed) return;
    s.closed = true;
    this.outbox.forget(s);
    this.streams.delete(s.id);
    s.onClose?.();
    this.endIfDrained();
  }

  private sendGoaway(code: number, reason: string): void {
    if (this.sentGoaway) return;
    this.sentGoaway = true;
    this.push(goaway(this.lastStreamId, code, reason));
  }

  private endIfDrained(): void {
    if (this.goingAway && this.streams.size === 0 && !this.over) {
      if (!this.reading) this.flush();
      this.end(false);
    }
  }

  /** A connection error: GOAWAY with its code, then close. */
  private fail(err: H2Error): void {
    if (this.over) return;
    this.events.error(new Error(`HTTP/2 ${errorName(err.code)}: ${err.reason}`));
    this.recv.close(); // no window given back past the GOAWAY
    this.sendGoaway(err.code, err.reason);
    this.flush();
    this.end(false);
  }

  /**
   * The connection is over: open streams are closed (their calls
   * cancelled). `hard`: the socket is cut now; otherwise what was written
   * is sent first, and the client given a moment to close its side.
   */
  private end(hard: boolean): void {
    if (this.over) {
      if (hard) this.socket.destroy();
      return;
    }
    this.over = true;
    this.flush();
    for (const s of [...this.streams.values()]) this.closeStream(s);
    if (hard) this.socket.destroy();
    else {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
    }
    for (const resolve of this.whenOver.splice(0)) resolve();
    this.events.closed();
  }

  private push(...parts: Buffer[]): void {
    this.outbox.push(...parts);
  }

  /**
   * An answer made outside a read goes out once the code that made it has
   * run to its end (a microtask later): answers made together leave in one
   * write, and what the caller does next (its log line) comes first.
   */
  private flushSoon(): void {
    if (this.reading || this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      this.flush();
    });
  }

  private flush(): void {
    const update = this.over ? undefined : this.recv.giveBack(0);
    if (update) this.push(update);
    this.outbox.flush();
  }
}
