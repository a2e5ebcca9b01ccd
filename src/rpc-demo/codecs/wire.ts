/**
 * The Protocol Buffers wire format, one primitive at a time.
 *
 * A protobuf message is a flat run of fields. Each field starts with a tag,
 * `(field number << 3) | wire type`, written as a varint. The wire type says
 * how long the value is, which is all a reader needs to skip a field it does
 * not know:
 *   0 VARINT  an integer in 7-bit groups, least significant group first; the
 *             top bit of each byte says "more bytes follow". 150 is 0x96 0x01.
 *   1 I64     8 bytes little-endian (fixed64, sfixed64, double)
 *   2 LEN     a varint length, then that many bytes (string, bytes, nested
 *             message, packed repeated numbers, map entry)
 *   5 I32     4 bytes little-endian (fixed32, sfixed32, float)
 * Negative int32/int64 values are sign-extended to 64 bits, so they always
 * take 10 bytes. sint32/sint64 first apply zigzag, which interleaves signs
 * (0→0, -1→1, 1→2, -2→3, …) so small negative numbers stay short.
 *
 * JavaScript numbers are doubles, which hold integers exactly only up to
 * 2^53, so 64-bit values travel through here as two 32-bit halves (lo, hi),
 * and reach the program as BigInt: exact over the whole range, from
 * -9223372036854775808 to 18446744073709551615.
 */

import { Code, RpcError } from "../rpc-error";

export const WireType = { VARINT: 0, I64: 1, LEN: 2, SGROUP: 3, EGROUP: 4, I32: 5 } as const;
export type WireType = (typeof WireType)[keyof typeof WireType];

export const WIRE_TYPE_NAMES = ["VARINT", "I64", "LEN", "SGROUP", "EGROUP", "I32", "(6)", "(7)"] as const;

const TWO_32 = 4294967296;
const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Bytes a varint of a 32-bit unsigned value takes. */
export function varint32Size(v: number): number {
  v >>>= 0;
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}

/** Bytes a varint of a 64-bit value (given as halves) takes. */
export function varint64Size(lo: number, hi: number): number {
  if (hi === 0) return varint32Size(lo);
  // Everything above bit 28 of lo spills into hi's groups.
  if (hi < 0x8) return 5;
  if (hi < 0x400) return 6;
  if (hi < 0x20000) return 7;
  if (hi < 0x1000000) return 8;
  if (hi < 0x80000000) return 9;
  return 10;
}

/**
 * Splits a 64-bit integer (a BigInt, or a number that is a safe integer)
 * into two's-complement 32-bit halves. Reuses one scratch pair: callers read
 * lo/hi before the next split. The caller has checked the range.
 */
export const split = { lo: 0, hi: 0 };
export function splitInt64(v: bigint | number): void {
  if (typeof v === "bigint") {
    // Most values are small: the number path avoids BigInt arithmetic.
    if (v >= -SAFE && v <= SAFE) v = Number(v);
    else {
      const u = BigInt.asUintN(64, v);
      split.lo = Number(u & 0xffffffffn);
      split.hi = Number(u >> 32n);
      return;
    }
  }
  if (v >= 0 && v < TWO_32) {
    split.lo = v >>> 0;
    split.hi = 0;
    return;
  }
  const hi = Math.floor(v / TWO_32);
  split.lo = (v - hi * TWO_32) >>> 0;
  split.hi = hi >>> 0;
}

/** Zigzag on the halves: (n << 1) ^ (n >> 63). */
export function zigzagSplit(): void {
  const sign = split.hi >> 31;
  const hi = ((split.hi << 1) | (split.lo >>> 31)) ^ sign;
  split.lo = ((split.lo << 1) ^ sign) >>> 0;
  split.hi = hi >>> 0;
}

/** The UTF-8 length of a string, as TextEncoder/Buffer would write it. */
export function utf8Length(s: string): number {
  if (s.length > 64) return Buffer.byteLength(s, "utf8");
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3; // includes lone surrogates, written as U+FFFD
  }
  return n;
}

/** Writes into a buffer whose size was measured beforehand. */
export class Writer {
  pos = 0;
  readonly buf: Buffer;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  varint32(v: number): void {
    v >>>= 0;
    const buf = this.buf;
    while (v > 0x7f) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[this.pos++] = v;
  }

  /** An int32 value: negative ones are sign-extended to 10 bytes. */
  int32(v: number): void {
    if (v >= 0) this.varint32(v);
    else this.varint64(v >>> 0, 0xffffffff);
  }

  varint64(lo: number, hi: number): void {
    const buf = this.buf;
    while (hi !== 0) {
      buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.varint32(lo);
  }

  fixed32(v: number): void {
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  fixed64(lo: number, hi: number): void {
    this.buf.writeUInt32LE(lo, this.pos);
    this.buf.writeUInt32LE(hi, this.pos + 4);
    this.pos += 8;
  }

  float(v: number): void {
    this.buf.writeFloatLE(v, this.pos);
    this.pos += 4;
  }

  double(v: number): void {
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.varint32(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  raw(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A string whose UTF-8 length is already known. */
  string(s: string, byteLength: number): void {
    this.varint32(byteLength);
    if (byteLength === s.length) {
      const buf = this.buf;
      for (let i = 0; i < s.length; i++) buf[this.pos++] = s.charCodeAt(i);
    } else {
      this.pos += this.buf.write(s, this.pos, byteLength, "utf8");
    }
  }
}

/** Bytes that are not valid protobuf: the caller sent a bad argument. */
export function malformed(message: string): RpcError {
  return new RpcError(Code.INVALID_ARGUMENT, `malformed protobuf: ${message}`);
}

export class Reader {
  pos: number;
  readonly end: number;
  readonly buf: Buffer;
  /** Set by varint64 and the 64-bit fixed reads. */
  lo = 0;
  hi = 0;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
    this.end = end;
  }

  /** The low 32 bits of a varint (longer varints are consumed whole). */
  varint32(): number {
    const buf = this.buf;
    let b = buf[this.pos++]!;
    if (b < 0x80) return b;
    let v = b & 0x7f;
    b = buf[this.pos++]!;
    v |= (b & 0x7f) << 7;
    if (b < 0x80) return v >>> 0;
    b = buf[this.pos++]!;
    v |= (b & 0x7f) << 14;
    if (b < 0x80) return v >>> 0;
    b = buf[this.pos++]!;
    v |= (b & 0x7f) << 21;
    if (b < 0x80) return v >>> 0;
    b = buf[this.pos++]!;
    v |= b << 28;
    // Bytes 6 to 10 only carry bits above 32; skip them.
    for (let i = 0; b >= 0x80 && i < 5; i++) b = buf[this.pos++]!;
    if (b >= 0x80 || this.pos > this.end) throw malformed("varint is longer than 10 bytes or runs past the end");
    return v >>> 0;
  }

  varint64(): void {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    let b = 0x80;
    for (; shift < 28 && b >= 0x80; shift += 7) {
      b = buf[this.pos++]!;
      lo |= (b & 0x7f) << shift;
    }
    if (b >= 0x80) {
      b = buf[this.pos++]!;
      lo |= (b & 0x0f) << 28;
      hi = (b & 0x7f) >> 4;
      for (shift = 3; shift < 32 && b >= 0x80; shift += 7) {
        b = buf[this.pos++]!;
        hi |= (b & 0x7f) << shift;
      }
    }
    if (b >= 0x80 || this.pos > this.end) throw malformed("varint is longer than 10 bytes or runs past the end");
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  fixed32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  fixed64(): void {
    this.need(8);
    this.lo = this.buf.readUInt32LE(this.pos);
    this.hi = this.buf.readUInt32LE(this.pos + 4);
    this.pos += 8;
  }

  float(): number {
    this.need(4);
    const v = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return v;
  }

  double(): number {
    this.need(8);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Reads a LEN prefix and returns where the value ends. */
  lengthEnd(): number {
    const at = this.pos;
    const n = this.varint32();
    const end = this.pos + n;
    if (end > this.end) throw malformed(`length ${n} at offset ${at} runs past the end of the message (${this.end - this.pos} bytes follow)`);
    return end;
  }

  bytes(): Buffer {
    const end = this.lengthEnd();
    const b = this.buf.subarray(this.pos, end);
    this.pos = end;
    return b;
  }

  string(): string {
    const end = this.lengthEnd();
    const buf = this.buf;
    let s = "";
    if (end - this.pos < 16) {
      for (let i = this.pos; i < end; i++) {
        const c = buf[i]!;
        if (c >= 0x80) {
          s = buf.toString("utf8", this.pos, end);
          break;
        }
        s += String.fromCharCode(c);
      }
    } else s = buf.toString("utf8", this.pos, end);
    this.pos = end;
    return s;
  }

  /** Skips one field's value; returns where it started. */
  skip(wireType: number): number {
    const start = this.pos;
    switch (wireType) {
      case WireType.VARINT:
        this.varint64();
        break;
      case WireType.I64:
        this.need(8);
        this.pos += 8;
        break;
      case WireType.LEN:
        this.pos = this.lengthEnd();
        break;
      case WireType.I32:
        this.need(4);
        this.pos += 4;
        break;
      default:
        throw malformed(`wire type ${wireType} at offset ${start} is not one proto3 uses`);
    }
    return start;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw malformed(`${n} bytes needed at offset ${this.pos}, message ends at ${this.end}`);
  }
}

/** A 64-bit value from its halves, exactly: a BigInt. */
export function int64FromHalves(lo: number, hi: number, signed: boolean): bigint {
  if (hi === 0) return BigInt(lo);
  const n = (signed ? hi | 0 : hi) * TWO_32 + lo;
  if (Number.isSafeInteger(n)) return BigInt(n);
  const u = (BigInt(hi) << 32n) | BigInt(lo);
  return signed ? BigInt.asIntN(64, u) : u;
}

/** Undo zigzag on halves in place (reader.lo/hi). */
export function unzigzag(r: { lo: number; hi: number }): void {
  const mask = -(r.lo & 1);
  const lo = ((r.lo >>> 1) | (r.hi << 31)) ^ mask;
  r.hi = ((r.hi >>> 1) ^ mask) >>> 0;
  r.lo = lo >>> 0;
}
