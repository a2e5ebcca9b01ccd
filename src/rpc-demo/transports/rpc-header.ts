/**
 * The call and reply headers our TCP and UDP transports put before the body.
 *
 * Modelled on ONC RPC (RFC 5531), slimmed down: every message starts with a
 * transaction ID (xid) chosen by the caller, and the reply repeats it. The
 * xid is what lets one connection carry many calls at once (replies come
 * back in any order and are matched by xid) and what lets a UDP server
 * recognise a retransmitted request. A call names its procedure with the
 * numeric call ID; a reply starts with an accept status in RFC 5531's
 * vocabulary, to which we add ERROR for a procedure that failed with a
 * gRPC-style status.
 *
 *   CALL   xid u32 | 0 u8 | codec u8 | program u32 | version u32 | procedure u32 | timeout ms u32 (0: none) | arguments…
 *   REPLY  xid u32 | 1 u8 | stat u8 | …
 *            SUCCESS 0        results…
 *            PROG_UNAVAIL 1, PROG_MISMATCH 2 (low u32 | high u32), PROC_UNAVAIL 3
 *            GARBAGE_ARGS 4   message (UTF-8)
 *            ERROR 5          code u8 | message (UTF-8)
 * All integers big-endian ("network order"), as in XDR.
 */
import type { Outcome } from "../call-ids/dispatch";
import { describeMiss, type CallNumber, type NumericMiss } from "../call-ids/registry";
import { Code, RpcError } from "../rpc-error";
import type { Segment } from "../trace";

export const CALL_HEADER_SIZE = 22;

export const AcceptStat = { SUCCESS: 0, PROG_UNAVAIL: 1, PROG_MISMATCH: 2, PROC_UNAVAIL: 3, GARBAGE_ARGS: 4, ERROR: 5 } as const;
export type AcceptStat = (typeof AcceptStat)[keyof typeof AcceptStat];
const STAT_NAMES = ["SUCCESS", "PROG_UNAVAIL", "PROG_MISMATCH", "PROC_UNAVAIL", "GARBAGE_ARGS", "ERROR"];

export interface CallMessage {
  readonly xid: number;
  readonly codecId: number;
  readonly number: CallNumber;
  /** 0 means no deadline. */
  readonly timeoutMs: number;
  readonly body: Buffer;
}

export type ReplyMessage =
  | { readonly xid: number; readonly stat: typeof AcceptStat.SUCCESS; readonly body: Buffer }
  | { readonly xid: number; readonly stat: typeof AcceptStat.PROG_UNAVAIL | typeof AcceptStat.PROC_UNAVAIL }
  | { readonly xid: number; readonly stat: typeof AcceptStat.PROG_MISMATCH; readonly low: number; readonly high: number }
  | { readonly xid: number; readonly stat: typeof AcceptStat.GARBAGE_ARGS; readonly message: string }
  | { readonly xid: number; readonly stat: typeof AcceptStat.ERROR; readonly code: number; readonly message: string };

const malformedHeader = (message: string) => new RpcError(Code.INTERNAL, `malformed RPC header: ${message}`);

/** The most the call header's 32-bit timeout field holds (about 49.7 days). */
export const MAX_HEADER_TIMEOUT_MS = 0xffffffff;

export function encodeCall(c: CallMessage): Buffer {
  // Written as is or not at all: a wrapped value would send another deadline than the dump shows.
  if (!Number.isInteger(c.timeoutMs) || c.timeoutMs < 0 || c.timeoutMs > MAX_HEADER_TIMEOUT_MS) {
    throw new RpcError(Code.INVALID_ARGUMENT, `a deadline of ${c.timeoutMs} ms does not fit the call header's timeout field (whole milliseconds, at most ${MAX_HEADER_TIMEOUT_MS})`);
  }
  const out = Buffer.allocUnsafe(CALL_HEADER_SIZE + c.body.length);
  out.writeUInt32BE(c.xid >>> 0, 0);
  out[4] = 0;
  out[5] = c.codecId;
  out.writeUInt32BE(c.number.program >>> 0, 6);
  out.writeUInt32BE(c.number.version >>> 0, 10);
  out.writeUInt32BE(c.number.procedure >>> 0, 14);
  out.writeUInt32BE(c.timeoutMs, 18);
  c.body.copy(out, CALL_HEADER_SIZE);
  return out;
}

export function isCall(msg: Buffer): boolean {
  return msg.length >= 5 && msg[4] === 0;
}

export function decodeCall(msg: Buffer): CallMessage {
  if (msg.length < CALL_HEADER_SIZE || msg[4] !== 0) throw malformedHeader(`not a call message (${msg.length} bytes)`);
  return {
    xid: msg.readUInt32BE(0),
    codecId: msg[5]!,
    number: { program: msg.readUInt32BE(6), version: msg.readUInt32BE(10), procedure: msg.readUInt32BE(14) },
    timeoutMs: msg.readUInt32BE(18),
    body: msg.subarray(CALL_HEADER_SIZE),
  };
}

export function encodeReply(r: ReplyMessage): Buffer {
  const head = Buffer.allocUnsafe(6);
  head.writeUInt32BE(r.xid >>> 0, 0);
  head[4] = 1;
  head[5] = r.stat;
  switch (r.stat) {
    case AcceptStat.SUCCESS:
      return Buffer.concat([head, r.body]);
    case AcceptStat.PROG_MISMATCH: {
      const v = Buffer.allocUnsafe(8);
      v.writeUInt32BE(r.low, 0);
      v.writeUInt32BE(r.high, 4);
      return Buffer.concat([head, v]);
    }
    case AcceptStat.GARBAGE_ARGS:
      return Buffer.concat([head, Buffer.from(r.message, "utf8")]);
    case AcceptStat.ERROR:
      return Buffer.concat([head, Buffer.from([r.code]), Buffer.from(r.message, "utf8")]);
    default:
      return head;
  }
}

export function decodeReply(msg: Buffer): ReplyMessage {
  if (msg.length < 6 || msg[4] !== 1) throw malformedHeader(`not a reply message (${msg.length} bytes)`);
  const xid = msg.readUInt32BE(0);
  const stat = msg[5]!;
  switch (stat) {
    case AcceptStat.SUCCESS:
      return { xid, stat, body: msg.subarray(6) };
    case AcceptStat.PROG_UNAVAIL:
    case AcceptStat.PROC_UNAVAIL:
      return { xid, stat };
    case AcceptStat.PROG_MISMATCH:
      if (msg.length < 14) throw malformedHeader("PROG_MISMATCH reply without its version range");
      return { xid, stat, low: msg.readUInt32BE(6), high: msg.readUInt32BE(10) };
    case AcceptStat.GARBAGE_ARGS:
      return { xid, stat, message: msg.toString("utf8", 6) };
    case AcceptStat.ERROR:
      if (msg.length < 7) throw malformedHeader("ERROR reply without a code");
      return { xid, stat, code: msg[6]!, message: msg.toString("utf8", 7) };
    default:
      throw malformedHeader(`unknown accept status ${stat}`);
  }
}

export function missReply(xid: number, miss: NumericMiss): ReplyMessage {
  switch (miss.kind) {
    case "PROG_UNAVAIL":
      return { xid, stat: AcceptStat.PROG_UNAVAIL };
    case "PROC_UNAVAIL":
      return { xid, stat: AcceptStat.PROC_UNAVAIL };
    case "PROG_MISMATCH":
      return { xid, stat: AcceptStat.PROG_MISMATCH, low: miss.low, high: miss.high };
  }
}

/** The byte ranges of an encoded call, for an annotated dump. */
export function callSegments(c: CallMessage, codecName: string): Segment[] {
  return [
    { length: 4, label: `xid 0x${c.xid.toString(16).padStart(8, "0")} (the reply will repeat it)`, kind: "xid" },
    { length: 1, label: "message type 0 = CALL", kind: "header" },
    { length: 1, label: `codec ${c.codecId} = ${codecName}`, kind: "header" },
    { length: 4, label: `program 0x${c.number.program.toString(16)}`, kind: "header" },
    { length: 4, label: `version ${c.number.version}`, kind: "header" },
    { length: 4, label: `procedure ${c.number.procedure}`, kind: "header" },
    { length: 4, label: `timeout ${c.timeoutMs === 0 ? "none" : `${c.timeoutMs} ms`}`, kind: "header" },
    { length: c.body.length, label: "the encoded arguments", kind: "message" },
  ];
}

export function replySegments(r: ReplyMessage): Segment[] {
  const out: Segment[] = [
    { length: 4, label: `xid 0x${r.xid.toString(16).padStart(8, "0")}`, kind: "xid" },
    { length: 1, label: "message type 1 = REPLY", kind: "header" },
    { length: 1, label: `accept status ${r.stat} = ${STAT_NAMES[r.stat] ?? "?"}`, kind: "header" },
  ];
  if (r.stat === AcceptStat.SUCCESS) out.push({ length: r.body.length, label: "the encoded results", kind: "message" });
  if (r.stat === AcceptStat.PROG_MISMATCH) out.push({ length: 4, label: `lowest version ${r.low}`, kind: "header" }, { length: 4, label: `highest version ${r.high}`, kind: "header" });
  if (r.stat === AcceptStat.GARBAGE_ARGS) out.push({ length: Buffer.byteLength(r.message), label: "why (UTF-8)", kind: "header" });
  if (r.stat === AcceptStat.ERROR) out.push({ length: 1, label: `status code ${r.code}`, kind: "header" }, { length: Buffer.byteLength(r.message), label: "message (UTF-8)", kind: "header" });
  return out;
}

/** A record mark's range, for an annotated dump. */
export function recordMarkSegment(recordLength: number): Segment {
  return { length: 4, label: `record mark: top bit 1 = last fragment, length ${recordLength}`, kind: "record-mark" };
}

/** The header fields, one per line, for the walkthrough. */
export function describeCallHeader(c: CallMessage, codecName: string): string[] {
  return [
    `xid        0x${c.xid.toString(16).padStart(8, "0")}  (the reply repeats it: the caller matches them by it)`,
    `type       0 CALL`,
    `codec      ${c.codecId} (${codecName})`,
    `program    0x${c.number.program.toString(16)}  version ${c.number.version}  procedure ${c.number.procedure}`,
    `timeout    ${c.timeoutMs === 0 ? "none" : `${c.timeoutMs} ms`}`,
    `arguments  ${c.body.length} bytes`,
  ];
}

export function describeReplyHeader(r: ReplyMessage): string[] {
  const lines = [`xid        0x${r.xid.toString(16).padStart(8, "0")}`, `type       1 REPLY`, `stat       ${r.stat} ${STAT_NAMES[r.stat] ?? "?"}`];
  if (r.stat === AcceptStat.SUCCESS) lines.push(`results    ${r.body.length} bytes`);
  if (r.stat === AcceptStat.ERROR) lines.push(`code       ${r.code}`, `message    ${JSON.stringify(r.message)}`);
  if (r.stat === AcceptStat.PROG_MISMATCH) lines.push(`versions   ${r.low}..${r.high}`);
  return lines;
}

/** The reply that carries a dispatcher's outcome. */
export function outcomeReply(xid: number, outcome: Outcome): ReplyMessage {
  switch (outcome.kind) {
    case "ok":
      return { xid, stat: AcceptStat.SUCCESS, body: outcome.body };
    case "no-such-procedure":
      return outcome.miss ? missReply(xid, outcome.miss) : { xid, stat: AcceptStat.PROC_UNAVAIL };
    case "error":
      if (outcome.stage === "decode") {
        return { xid, stat: AcceptStat.GARBAGE_ARGS, message: outcome.error.message };
      }
      return { xid, stat: AcceptStat.ERROR, code: outcome.error.code, message: outcome.error.message };
  }
}

/** A reply as the caller's result: the encoded results, or the error it stands for. */
export function replyResult(reply: ReplyMessage, n: CallNumber): Buffer | RpcError {
  switch (reply.stat) {
    case AcceptStat.SUCCESS:
      return reply.body;
    case AcceptStat.PROG_UNAVAIL:
      return new RpcError(Code.UNIMPLEMENTED, describeMiss(n, { kind: "PROG_UNAVAIL" }));
    case AcceptStat.PROC_UNAVAIL:
      return new RpcError(Code.UNIMPLEMENTED, describeMiss(n, { kind: "PROC_UNAVAIL" }));
    case AcceptStat.PROG_MISMATCH:
      return new RpcError(Code.UNIMPLEMENTED, describeMiss(n, { kind: "PROG_MISMATCH", low: reply.low, high: reply.high }));
    case AcceptStat.GARBAGE_ARGS:
      return new RpcError(Code.INVALID_ARGUMENT, reply.message);
    case AcceptStat.ERROR:
      return new RpcError(reply.code as Code, reply.message);
  }
}
