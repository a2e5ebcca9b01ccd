/**
 * gRPC's framing on HTTP/2, the parts that are not HTTP/2 itself.
 *
 * A gRPC call is one HTTP/2 stream. The request is a POST whose `:path` is
 * the call ID (/package.Service/Method); `content-type: application/grpc`
 * (+proto, +json) names the codec; `te: trailers` promises the client
 * understands trailers (some proxies drop them, and gRPC's status lives
 * there); `grpc-timeout` carries the deadline as a relative duration, so
 * the two machines' clocks need not agree.
 *
 * HTTP/2 already delimits the stream, yet each message inside it gets its
 * own 5-byte prefix — a compressed flag and a big-endian length — because a
 * streaming call carries many messages in one stream and HTTP/2 DATA frames
 * may split or join them freely.
 *
 * The outcome comes last, in trailers: `grpc-status` (a number, 0 for OK)
 * and `grpc-message` (percent-encoded text). A call that fails before any
 * reply sends only headers with the status in them ("trailers-only").
 */
import { Code, RpcError } from "../rpc-error";
import type { Segment } from "../trace";

export const PREFIX_SIZE = 5;

export function frameMessage(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_SIZE + body.length);
  out[0] = 0; // not compressed
  out.writeUInt32BE(body.length, 1);
  out.set(body, PREFIX_SIZE);
  return out;
}

/** The byte ranges of a framed message, for an annotated dump. */
export function prefixSegments(frame: Uint8Array): Segment[] {
  const len = frame.length - PREFIX_SIZE;
  return [
    { length: 1, label: `compressed flag ${frame[0]} (${frame[0] ? "compressed" : "not compressed"})`, kind: "grpc-prefix" },
    { length: 4, label: `message length ${len} (big-endian)`, kind: "grpc-prefix" },
    { length: len, label: "the encoded message", kind: "message" },
  ];
}

export interface GrpcMessage {
  readonly compressed: boolean;
  readonly body: Buffer;
  /** Prefix and body as they were on the wire. */
  readonly frame: Buffer;
}



/** Collects DATA bytes and cuts them into length-prefixed messages. */
export class MessageDeframer {
  private buf: Buffer = Buffer.alloc(0);
  readonly messages: GrpcMessage[] = [];

  constructor(private readonly maxMessage = 4 * 1024 * 1024) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= PREFIX_SIZE) {
      const flag = this.buf[0]!;
      if (flag > 1) throw new RpcError(Code.INTERNAL, `message prefix flag ${flag} is neither 0 nor 1`);
      const len = this.buf.readUInt32BE(1);
      if (len > this.maxMessage) throw new RpcError(Code.RESOURCE_EXHAUSTED, `message of ${len} bytes is larger than the limit of ${this.maxMessage}`);
      if (this.buf.length < PREFIX_SIZE + len) break;
      const frame = this.buf.subarray(0, PREFIX_SIZE + len);
      this.messages.push({ compressed: flag === 1, body: frame.subarray(PREFIX_SIZE), frame });
      this.buf = this.buf.subarray(PREFIX_SIZE + len);
    }
  }

  /** Bytes of a message that never finished. */
  get leftover(): number {
    return this.buf.length;
  }
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** grpc-timeout: at most 8 digits and a unit. */
export function encodeTimeout(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole < 1e8) return `${whole}m`;
  const s = Math.ceil(whole / 1000);
  if (s < 1e8) return `${s}S`;
  return `${Math.min(99_999_999, Math.ceil(s / 3600))}H`;
}

/** The deadline in ms from now, or undefined when absent; throws when malformed. */
export function parseTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) throw new RpcError(Code.INTERNAL, `malformed grpc-timeout ${JSON.stringify(value)}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** grpc-message is percent-encoded UTF-8: printable ASCII stays, the rest becomes %XX. */
export function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export function decodeGrpcMessage(value: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const hex = value.slice(i + 1, i + 3);
    if (value[i] === "%" && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(value.charCodeAt(i) & 0xff);
  }
  return Buffer.from(bytes).toString("utf8");
}

/** A non-200 HTTP status means no gRPC server answered; gRPC maps it to a code. */
export function codeForHttpStatus(status: number): Code {
  switch (status) {
    case 400:
      return Code.INTERNAL;
    case 401:
      return Code.UNAUTHENTICATED;
    case 403:
      return Code.PERMISSION_DENIED;
    case 404:
      return Code.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.UNAVAILABLE;
    default:
      return Code.UNKNOWN;
  }
}
