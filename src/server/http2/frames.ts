/**
 * HTTP/2 frames (RFC 9113 §4, §6): reading them off a byte stream, and
 * making them.
 *
 * After a fixed 24-byte preface from the client, an HTTP/2 connection is a
 * sequence of frames in each direction: a 9-byte header — payload length
 * (3 bytes), type, flags, stream id (31 bits) — then the payload. A request
 * is a HEADERS frame (continued by CONTINUATION frames when its header
 * block is large) opening a stream, DATA frames carrying the body, and the
 * END_STREAM flag on the last of them. A header block must arrive whole:
 * between a HEADERS without END_HEADERS and the CONTINUATION that ends it,
 * no other frame may come, on any stream.
 *
 * FrameReader cuts the client's bytes into frames, joins each header
 * block, takes off padding and priority fields, and names the first thing
 * that breaks these rules, with the error code RFC 9113 gives it. The
 * builders below make frames: the connection's own, and those the tests
 * send — including requests no library would.
 */

import { Gathered } from "./gather";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
export const FRAME_HEADER = 9;

export const TYPE = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
/** Error codes of RST_STREAM and GOAWAY (RFC 9113 §7). */
export const ERROR_CODE = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  ENHANCE_YOUR_CALM: 0xb,
} as const;
/** SETTINGS parameters (RFC 9113 §6.5.2). */
export const SETTING = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** SETTINGS_MAX_FRAME_SIZE's default, which we keep: the largest frame payload either side sends before told otherwise. */
export const MAX_FRAME = 16384;
/** The largest a flow-control window may be (RFC 9113 §6.9.1). */
export const MAX_WINDOW = 2 ** 31 - 1;
/**
 * The largest header block FrameReader gathers, its frames' 9-byte headers
 * counted in. A block is kept whole until its last CONTINUATION, so without
 * a bound a client that never ends one (a "CONTINUATION flood") would grow
 * the driver's memory without end — also with empty CONTINUATIONs, which
 * add no bytes to the block but cost a frame each.
 */
export const MAX_HEADER_BLOCK = 256 * 1024;

/** Something the client did that RFC 9113 makes a connection error: GOAWAY with `code`, then close. */
export interface H2Error {
  code: number;
  reason: string;
}

export function protocolError(reason: string): H2Error {
  return { code: ERROR_CODE.PROTOCOL_ERROR, reason };
}

export function frameSizeError(what: string, length: number): H2Error {
  return { code: ERROR_CODE.FRAME_SIZE_ERROR, reason: `${what} with a payload of ${length} bytes` };
}

const ERROR_NAMES = Object.fromEntries(Object.entries(ERROR_CODE).map(([k, v]) => [v, k])) as Record<number, string>;

/** An error code's name in RFC 9113 (PROTOCOL_ERROR…), or undefined for a code it does not name. */
export function knownErrorName(code: number): string | undefined {
  return ERROR_NAMES[code];
}

/** An error code's name in RFC 9113 (PROTOCOL_ERROR…), or its number. */
export function errorName(code: number): string {
  return knownErrorName(code) ?? String(code);
}

/** A header block: one HEADERS frame and its CONTINUATIONs, padding and priority taken off, the HPACK bytes joined. */
export interface HeaderBlock {
  streamId: number;
  /** Flags of the HEADERS frame (END_STREAM…). */
  flags: number;
  block: Buffer;
}

export interface FrameSink {
  /** Any frame but HEADERS and CONTINUATION; `payload` is only valid during the call. */
  frame(type: number, flags: number, streamId: number, payload: Buffer): H2Error | void;
  headers(h: HeaderBlock): H2Error | void;
}

/**
 * Splits the client→server byte stream into the preface, frames and header
 * blocks. Bytes of a frame not yet complete are kept until the rest arrives
 * (never more than one frame's worth).
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private prefaceDone = false;
  private pending: { streamId: number; flags: number; block: Gathered; size: number } | undefined;
  private stopped = false;

  constructor(
    private readonly sink: FrameSink,
    /** The SETTINGS_MAX_FRAME_SIZE we advertised. */
    private readonly maxFrame = MAX_FRAME,
  ) {}

  /**
   * Hand the sink no more frames after the one it is handling: the connection takes no more for now. What follows is
   * kept, unread, until `resume`.
   */
  stop(): void {
    this.stopped = true;
  }

  /** Hand the sink the frames kept since `stop`, and go on as before. */
  resume(): H2Error | undefined {
    this.stopped = false;
    return this.push(Buffer.alloc(0));
  }

  /** Take the next bytes; frames are handed to the sink. Returns the first connection error, after which nothing more is read. */
  push(chunk: Buffer): H2Error | undefined {
    if (chunk.length > 0) this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.stopped) return undefined;
    if (!this.prefaceDone) {
      const n = Math.min(this.buf.length, PREFACE.length);
      if (!this.buf.subarray(0, n).equals(PREFACE.subarray(0, n))) return { code: ERROR_CODE.PROTOCOL_ERROR, reason: "not the HTTP/2 client preface" };
      if (this.buf.length < PREFACE.length) return undefined;
      this.buf = this.buf.subarray(PREFACE.length);
      this.prefaceDone = true;
    }
    let at = 0;
    const buf = this.buf;
    while (!this.stopped && buf.length - at >= FRAME_HEADER) {
      const len = buf.readUIntBE(at, 3);
      if (len > this.maxFrame) return { code: ERROR_CODE.FRAME_SIZE_ERROR, reason: `a frame of ${len} bytes, past the ${this.maxFrame} we allow` };
      if (buf.length - at < FRAME_HEADER + len) break;
      const type = buf[at + 3]!;
      const flags = buf[at + 4]!;
      const streamId = buf.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = buf.subarray(at + FRAME_HEADER, at + FRAME_HEADER + len);
      at += FRAME_HEADER + len;
      const err = this.take(type, flags, streamId, payload);
      if (err) return err;
    }
    // Keep only the unread tail, copied: a subarray would hold the whole chunk.
    this.buf = at === buf.length ? Buffer.alloc(0) : at === 0 ? buf : Buffer.from(buf.subarray(at));
    return undefined;
  }

  private take(type: number, flags: number, streamId: number, payload: Buffer): H2Error | void {
    if (this.pending) {
      if (type !== TYPE.CONTINUATION || streamId !== this.pending.streamId) {
        return { code: ERROR_CODE.PROTOCOL_ERROR, reason: `a frame of type ${type} inside stream ${this.pending.streamId}'s header block` };
      }
      // Each frame counts its 9-byte header as well: a flood of empty CONTINUATIONs reaches the bound as one of full ones does.
      this.pending.size += FRAME_HEADER + payload.length;
      if (this.pending.size > MAX_HEADER_BLOCK) {
        return { code: ERROR_CODE.ENHANCE_YOUR_CALM, reason: `a header block past ${MAX_HEADER_BLOCK} bytes` };
      }
      this.pending.block.add(payload);
      if (flags & FLAG.END_HEADERS) return this.finishBlock();
      return;
    }
    if (type === TYPE.CONTINUATION) return { code: ERROR_CODE.PROTOCOL_ERROR, reason: "a CONTINUATION with no header block open" };
    if (type !== TYPE.HEADERS) return this.sink.frame(type, flags, streamId, payload);
    if (streamId === 0) return { code: ERROR_CODE.PROTOCOL_ERROR, reason: "HEADERS on stream 0" };
    const part = unpad(flags, payload, flags & FLAG.PRIORITY ? 5 : 0);
    if (!part) return { code: ERROR_CODE.PROTOCOL_ERROR, reason: "a HEADERS frame whose padding or priority is longer than itself" };
    if (flags & FLAG.END_HEADERS) return this.sink.headers({ streamId, flags, block: part });
    const block = new Gathered(MAX_HEADER_BLOCK);
    block.add(part);
    this.pending = { streamId, flags, block, size: FRAME_HEADER + payload.length };
  }

  private finishBlock(): H2Error | void {
    const p = this.pending!;
    this.pending = undefined;
    return this.sink.headers({ streamId: p.streamId, flags: p.flags, block: p.block.bytes });
  }
}

/**
 * A DATA or HEADERS payload without its padding (and `skip` bytes of
 * priority fields after the pad length); undefined when they do not fit.
 */
export function unpad(flags: number, payload: Buffer, skip = 0): Buffer | undefined {
  let start = skip;
  let pad = 0;
  if (flags & FLAG.PADDED) {
    if (payload.length < 1) return undefined;
    pad = payload[0]!;
    start += 1;
  }
  if (start + pad > payload.length) return undefined;
  return payload.subarray(start, payload.length - pad);
}

export function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEADER);
  head.writeUIntBE(length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return head;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  return Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);
}

export function rstStream(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code, 0);
  return frame(TYPE.RST_STREAM, 0, streamId, p);
}

export function windowUpdate(streamId: number, increment: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(increment, 0);
  return frame(TYPE.WINDOW_UPDATE, 0, streamId, p);
}

export function goaway(lastStreamId: number, code: number, debug = ""): Buffer {
  const p = Buffer.alloc(8 + Buffer.byteLength(debug));
  p.writeUInt32BE(lastStreamId, 0);
  p.writeUInt32BE(code, 4);
  p.write(debug, 8);
  return frame(TYPE.GOAWAY, 0, 0, p);
}

export function settings(values: [id: number, value: number][]): Buffer {
  const p = Buffer.alloc(6 * values.length);
  values.forEach(([id, value], i) => {
    p.writeUInt16BE(id, 6 * i);
    p.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(TYPE.SETTINGS, 0, 0, p);
}

/** A header block as HEADERS and CONTINUATION frames of at most `maxFrame` bytes each; END_STREAM as `flags` says. */
export function headerFrames(block: Buffer, flags: number, streamId: number, maxFrame = MAX_FRAME): Buffer[] {
  if (block.length <= maxFrame) return [frameHeader(block.length, TYPE.HEADERS, (flags & FLAG.END_STREAM) | FLAG.END_HEADERS, streamId), block];
  const frames: Buffer[] = [];
  for (let at = 0; at < block.length; at += maxFrame) {
    const part = block.subarray(at, at + maxFrame);
    const last = at + maxFrame >= block.length ? FLAG.END_HEADERS : 0;
    const head = at === 0 ? frameHeader(part.length, TYPE.HEADERS, (flags & FLAG.END_STREAM) | last, streamId) : frameHeader(part.length, TYPE.CONTINUATION, last, streamId);
    frames.push(head, part);
  }
  return frames;
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1), `high` holding the bits above the prefix. */
export function hpackInt(value: number, prefixBits: number, high: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [high | value];
  const out = [high | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function hpackString(s: string): number[] {
  const bytes = Buffer.from(s, "latin1");
  return [...hpackInt(bytes.length, 7, 0), ...bytes];
}

/**
 * Encode header fields so that no HPACK table changes: ":status: 200" as
 * the static table's entry 8, everything else as a literal without
 * indexing with a literal name. (Names and values must be latin1.)
 */
export function encodeWithoutIndexing(fields: [string, string][]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    if (name === ":status" && value === "200") out.push(0x88);
    else out.push(0x00, ...hpackString(name), ...hpackString(value));
  }
  return Buffer.from(out);
}
