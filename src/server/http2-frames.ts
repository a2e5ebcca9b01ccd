/**
 * HTTP/2 frames, as first-request.ts and the connection guard
 * (connection-guard.ts) read and write them.
 *
 * After a fixed 24-byte preface from the client, an HTTP/2 connection is a
 * sequence of frames in each direction: a 9-byte header — payload length
 * (3 bytes), type, flags, stream id (31 bits) — then the payload. A request
 * is a HEADERS frame (continued by CONTINUATION frames when its header
 * block is large) opening a stream, DATA frames carrying the body, and the
 * END_STREAM flag on the last of them. Header blocks are HPACK-compressed
 * with a table that spans the whole connection, so every block must be
 * decoded, in order, by whoever wants to read any of them.
 *
 * This module splits a byte stream into frames and header blocks, builds
 * frames, and encodes header fields in a way that leaves both ends' HPACK
 * tables as they were (indexed static entries and literals "without
 * indexing"), which the tests use to send requests no library would.
 */

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
export const FRAME_HEADER = 9;

export const TYPE = { DATA: 0x0, HEADERS: 0x1, PRIORITY: 0x2, RST_STREAM: 0x3, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9 } as const;
export const FLAG = { END_STREAM: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
/** RST_STREAM error codes (RFC 9113 §7). */
export const ERROR_CODE = { NO_ERROR: 0x0, INTERNAL_ERROR: 0x2, CANCEL: 0x8 } as const;

/** SETTINGS_MAX_FRAME_SIZE that Node's server advertises unless told otherwise. */
export const MAX_FRAME = 16384;
/**
 * The largest header block FrameReader gathers. A block is kept whole
 * until its last CONTINUATION, so without a bound a client that never ends
 * one (a "CONTINUATION flood") would grow the driver's memory without end;
 * nghttp2, reading a socket itself, stops such a client long before this.
 */
export const MAX_HEADER_BLOCK = 256 * 1024;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  /** The whole frame, header included. */
  raw: Buffer;
}

export function payloadOf(f: Frame): Buffer {
  return f.raw.subarray(FRAME_HEADER);
}

/** A header block: one HEADERS frame and its CONTINUATIONs, with the HPACK bytes joined. */
export interface HeaderBlock {
  streamId: number;
  /** Flags of the HEADERS frame (END_STREAM, PRIORITY…). */
  flags: number;
  /** The priority fields of the HEADERS frame, if it had them. */
  priority: Buffer | undefined;
  block: Buffer;
  /** The frames as received. */
  frames: Buffer[];
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(FRAME_HEADER);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

export function rstStream(streamId: number, code: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code, 0);
  return frame(TYPE.RST_STREAM, 0, streamId, p);
}

export function headerFrames(block: Buffer, flags: number, streamId: number, priority: Buffer | undefined): Buffer[] {
  const keep = (flags & FLAG.END_STREAM) | (priority ? FLAG.PRIORITY : 0);
  const firstRoom = MAX_FRAME - (priority ? 5 : 0);
  const frames: Buffer[] = [];
  let rest = block;
  let first = true;
  do {
    const room = first ? firstRoom : MAX_FRAME;
    const part = rest.subarray(0, room);
    rest = rest.subarray(part.length);
    const end = rest.length === 0 ? FLAG.END_HEADERS : 0;
    frames.push(
      first
        ? frame(TYPE.HEADERS, keep | end, streamId, priority ? Buffer.concat([priority, part]) : part)
        : frame(TYPE.CONTINUATION, end, streamId, part),
    );
    first = false;
  } while (rest.length > 0);
  return frames;
}

/**
 * Splits the client→server byte stream into the preface, frames and header
 * blocks. Bytes of a frame not yet complete are kept until the rest arrives.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private prefaceDone = false;
  private pending: (Omit<HeaderBlock, "block"> & { parts: Buffer[]; size: number }) | undefined;

  constructor(
    private readonly on: {
      preface(raw: Buffer): void;
      frame(f: Frame): void;
      headers(h: HeaderBlock): void;
    },
  ) {}

  /**
   * Returns false if the bytes are not HTTP/2 with prior knowledge, or are
   * HTTP/2 no server accepts: a frame larger than MAX_FRAME, a header block
   * larger than MAX_HEADER_BLOCK. What is not yet handed on is then left in
   * takeRest(), for the server to judge.
   */
  push(chunk: Buffer): boolean {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (!this.prefaceDone) {
      const n = Math.min(this.buf.length, PREFACE.length);
      if (!this.buf.subarray(0, n).equals(PREFACE.subarray(0, n))) return false;
      if (this.buf.length < PREFACE.length) return true;
      this.on.preface(this.buf.subarray(0, PREFACE.length));
      this.buf = this.buf.subarray(PREFACE.length);
      this.prefaceDone = true;
    }
    while (this.buf.length >= FRAME_HEADER) {
      const len = this.buf.readUIntBE(0, 3);
      if (len > MAX_FRAME) return false;
      if (this.buf.length < FRAME_HEADER + len) break;
      const raw = this.buf.subarray(0, FRAME_HEADER + len);
      this.buf = this.buf.subarray(FRAME_HEADER + len);
      this.take({ type: raw[3]!, flags: raw[4]!, streamId: raw.readUInt32BE(5) & 0x7fffffff, raw });
      if (this.pending && this.pending.size > MAX_HEADER_BLOCK) return false;
    }
    return true;
  }

  /** Bytes received but not yet handed on (a partial frame or header block). */
  takeRest(): Buffer {
    const rest = Buffer.concat([...(this.pending?.frames ?? []), this.buf]);
    this.buf = Buffer.alloc(0);
    this.pending = undefined;
    return rest;
  }

  private take(f: Frame): void {
    if (f.type === TYPE.HEADERS) {
      let p = payloadOf(f);
      let pad = 0;
      if (f.flags & FLAG.PADDED) {
        pad = p[0] ?? 0;
        p = p.subarray(1);
      }
      let priority: Buffer | undefined;
      if (f.flags & FLAG.PRIORITY) {
        priority = Buffer.from(p.subarray(0, 5));
        p = p.subarray(5);
      }
      const part = p.subarray(0, Math.max(0, p.length - pad));
      this.pending = { streamId: f.streamId, flags: f.flags, priority, parts: [part], size: part.length, frames: [f.raw] };
      if (f.flags & FLAG.END_HEADERS) this.finishBlock();
    } else if (f.type === TYPE.CONTINUATION && this.pending) {
      this.pending.parts.push(payloadOf(f));
      this.pending.size += f.raw.length - FRAME_HEADER;
      this.pending.frames.push(f.raw);
      if (f.flags & FLAG.END_HEADERS) this.finishBlock();
    } else {
      this.on.frame(f);
    }
  }

  private finishBlock(): void {
    const p = this.pending!;
    this.pending = undefined;
    const block = p.parts.length === 1 ? p.parts[0]! : Buffer.concat(p.parts);
    this.on.headers({ streamId: p.streamId, flags: p.flags, priority: p.priority, block, frames: p.frames });
  }
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1), `high` holding the bits above the prefix. */
function hpackInt(value: number, prefixBits: number, high: number): number[] {
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
 * indexing with a literal name. (Names and values must be ASCII.)
 */
export function encodeWithoutIndexing(fields: [string, string][]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    if (name === ":status" && value === "200") out.push(0x88);
    else out.push(0x00, ...hpackString(name), ...hpackString(value));
  }
  return Buffer.from(out);
}
