/**
 * What a connection sends: frames gathered into few socket writes, and
 * answers' bodies held to the client's flow-control windows.
 *
 * HTTP/2 lets a receiver bound what it is sent: each stream has a window,
 * and so has the connection, both 65,535 bytes unless the client says
 * otherwise (SETTINGS_INITIAL_WINDOW_SIZE for streams, WINDOW_UPDATE for
 * either). Only DATA counts. A body is cut into frames no larger than the
 * client's SETTINGS_MAX_FRAME_SIZE and the smaller window; what does not
 * fit waits, in the order it began waiting, for a WINDOW_UPDATE. Trailers
 * go out once the whole body has.
 *
 * Frames are gathered, not written one by one: the connection flushes once
 * it has handled a read from the socket, or made an answer, so an answer's
 * HEADERS, DATA and trailers leave in one write when the windows allow.
 */
import type { Duplex } from "node:stream";
import { FLAG, frameHeader, headerFrames, hpackInt, MAX_FRAME, TYPE } from "./frames";
import type { Stream } from "./stream";

export const DEFAULT_WINDOW = 65535;
/** Output larger than this goes out as a corked series of writes rather than one copied buffer. */
const COPY_LIMIT = 64 * 1024;

export class Outbox {
  /** The client's connection window, and its SETTINGS_MAX_FRAME_SIZE. */
  sendWindow = DEFAULT_WINDOW;
  maxFrame = MAX_FRAME;
  /** A dynamic table size update owed to the client's decoder at the start of our next header block (RFC 7541 §4.2). */
  tableSizeUpdate: number | undefined;
  /** Streams with body bytes waiting for window. */
  private readonly blocked = new Set<Stream>();
  private out: Buffer[] = [];
  private outBytes = 0;

  constructor(
    private readonly socket: Duplex,
    /** A stream's END_STREAM has gone out (its trailers). */
    private readonly sentEnd: (s: Stream) => void,
  ) {}

  push(...parts: Buffer[]): void {
    for (const p of parts) {
      this.out.push(p);
      this.outBytes += p.length;
    }
  }

  pushHeaders(block: Buffer, flags: number, id: number): void {
    if (this.tableSizeUpdate !== undefined) {
      block = Buffer.concat([Buffer.from(hpackInt(this.tableSizeUpdate, 5, 0x20)), block]);
      this.tableSizeUpdate = undefined;
    }
    this.push(...headerFrames(block, flags, id, this.maxFrame));
  }

  /** A body and its trailers for a stream whose HEADERS are out: sent as the windows allow. */
  sendBody(s: Stream, body: Buffer, trailers: Buffer): void {
    s.pendingData = body;
    s.pendingTrailers = trailers;
    this.pump(s);
  }

  /** Send what the windows allow of a stream's body; its trailers once all of it is out. */
  pump(s: Stream): void {
    let data = s.pendingData;
    if (!data) return;
    while (data.length > 0) {
      const n = Math.min(data.length, this.maxFrame, s.sendWindow, this.sendWindow);
      if (n <= 0) break;
      this.push(frameHeader(n, TYPE.DATA, 0, s.id), data.subarray(0, n));
      s.sendWindow -= n;
      this.sendWindow -= n;
      data = data.subarray(n);
    }
    if (data.length > 0) {
      s.pendingData = data;
      this.blocked.add(s);
      return;
    }
    s.pendingData = undefined;
    this.blocked.delete(s);
    const trailers = s.pendingTrailers!;
    s.pendingTrailers = undefined;
    this.pushHeaders(trailers, FLAG.END_STREAM, s.id);
    this.sentEnd(s);
  }

  /** The connection's window opened, or streams' windows did: resume waiting bodies in turn. */
  pumpAll(): void {
    for (const s of this.blocked) {
      if (this.sendWindow <= 0) return;
      this.pump(s);
    }
  }

  /** A stream is over: nothing more of its body goes out. */
  forget(s: Stream): void {
    s.pendingData = undefined;
    s.pendingTrailers = undefined;
    this.blocked.delete(s);
  }

  /** Write what was gathered. */
  flush(): void {
    if (this.out.length === 0) return;
    const parts = this.out;
    const bytes = this.outBytes;
    this.out = [];
    this.outBytes = 0;
    if (this.socket.destroyed || !this.socket.writable) return;
    if (parts.length === 1) this.socket.write(parts[0]);
    else if (bytes <= COPY_LIMIT) this.socket.write(Buffer.concat(parts, bytes));
    else {
      this.socket.cork();
      for (const p of parts) this.socket.write(p);
      this.socket.uncork();
    }
  }
}
