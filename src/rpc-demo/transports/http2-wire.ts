/**
 * HTTP/2 as it is on the wire: frames, their 9-byte headers, HPACK.
 *
 * node:http2 hides the bytes it exchanges, so the walkthrough puts a tap
 * between the HTTP/2 session and its TCP socket and reads what passes.
 * Everything on an HTTP/2 connection is a frame (after the client's
 * 24-byte preface, "PRI * HTTP/2.0…", which proves it speaks HTTP/2):
 *
 *   length (3 bytes) | type (1) | flags (1) | R + stream id (4) | payload…
 *
 * HEADERS frames carry the request and response headers HPACK-compressed
 * (RFC 7541): a header the other side already knows is one byte, an index
 * into a static table of 61 common headers or a dynamic table both ends
 * fill as the connection goes; a new one is a literal, its strings often
 * Huffman-coded. DATA frames carry gRPC's length-prefixed messages.
 * SETTINGS, WINDOW_UPDATE and PING are the connection's own housekeeping.
 *
 * The annotator cuts a direction's bytes into frames and names every byte
 * range, HPACK representations included: the same segments the terminal
 * prints and the lab page highlights. It reads what a peer sends, broken or
 * hostile as that may be: a frame it cannot read (a payload too short for
 * its type, a header block that does not decode) is named as unread bytes
 * with a note saying why, and node:http2, which sees the same bytes, decides
 * what becomes of the connection.
 */
import { Duplex } from "node:stream";
import type * as net from "node:net";
import hpack, { type Decompressor } from "hpack.js";
import type { Segment } from "../trace";
import { FRAME_HEADER, knownErrorName, PREFACE } from "../../server/http2/frames";
import { prefixSegments, PREFIX_SIZE } from "./grpc-framing";

export { PREFACE };
const TYPES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"];
/** Payload sizes RFC 9113 fixes: PRIORITY, RST_STREAM, PING, WINDOW_UPDATE (GOAWAY's is at least 8). */
const FIXED_PAYLOAD: Record<number, number> = { 2: 5, 3: 4, 6: 8, 8: 4 };
const errorCode = (code: number) => `error code ${code}${knownErrorName(code) ? ` ${knownErrorName(code)}` : ""}`;
const SETTINGS = ["", "HEADER_TABLE_SIZE", "ENABLE_PUSH", "MAX_CONCURRENT_STREAMS", "INITIAL_WINDOW_SIZE", "MAX_FRAME_SIZE", "MAX_HEADER_LIST_SIZE", "", "ENABLE_CONNECT_PROTOCOL"];

function flagNames(type: number, flags: number): string[] {
  const out: string[] = [];
  if (flags & 0x1) out.push(type === 4 || type === 6 ? "ACK" : "END_STREAM");
  if (flags & 0x4) out.push("END_HEADERS");
  if (flags & 0x8) out.push("PADDED");
  if (flags & 0x20) out.push("PRIORITY");
  return out;
}

/** What one chunk of a direction held: its whole frames, named byte by byte. */
export interface WireChunk {
  readonly bytes: Buffer;
  readonly segments: Segment[];
  /** "HEADERS (stream 1)", one per frame */
  readonly frames: string[];
  /** What could not be read, and why ("could not decode this header block: …"), for the step's notes. */
  readonly notes: string[];
}

/** One direction of a connection: bytes in, annotated frames out (a frame split over reads waits for its rest). */
export class FrameAnnotator {
  private pending: Buffer = Buffer.alloc(0);
  private needPreface: boolean;
  private hpack: Decompressor = newDecompressor();

  constructor(fromClient: boolean) {
    this.needPreface = fromClient;
  }

  push(chunk: Buffer): WireChunk | undefined {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const segments: Segment[] = [];
    const frames: string[] = [];
    const notes: string[] = [];
    let pos = 0;
    const buf = this.pending;
    if (this.needPreface) {
      if (buf.length < PREFACE.length) return undefined;
      this.needPreface = false;
      segments.push({ length: PREFACE.length, label: 'connection preface "PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n": this client speaks HTTP/2', kind: "preface", group: "preface" });
      frames.push("preface");
      pos = PREFACE.length;
    }
    while (buf.length - pos >= FRAME_HEADER) {
      const length = buf.readUIntBE(pos, 3);
      if (buf.length - pos < FRAME_HEADER + length) break;
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      const stream = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      const name = TYPES[type] ?? `type ${type}`;
      const fl = flagNames(type, flags);
      const group = `${name} frame${stream ? `, stream ${stream}` : " (the connection)"}${fl.length ? `, ${fl.join(" ")}` : ""}`;
      frames.push(`${name}${stream ? ` (stream ${stream})` : ""}`);
      const head = (length: number, label: string): Segment => ({ length, label, kind: "frame-header", group });
      segments.push(
        head(3, `frame header: payload length ${length}`),
        head(1, `frame type ${type} = ${name}`),
        head(1, `flags 0x${flags.toString(16).padStart(2, "0")}${fl.length ? ` = ${fl.join(" + ")}` : " (none)"}`),
        head(4, `stream ${stream}${stream === 0 ? " (0: the connection itself)" : ""}`),
      );
      const payload = buf.subarray(pos + FRAME_HEADER, pos + FRAME_HEADER + length);
      for (const s of this.readPayload(type, name, flags, payload, notes)) segments.push({ ...s, group });
      pos += FRAME_HEADER + length;
    }
    this.pending = buf.subarray(pos);
    if (pos === 0) return undefined;
    return { bytes: Buffer.from(buf.subarray(0, pos)), segments, frames, notes };
  }

  /** A payload's segments, which always add up to its length; what cannot be read is one unread range and a note. */
  private readPayload(type: number, name: string, flags: number, p: Buffer, notes: string[]): Segment[] {
    const unread = (why: string): Segment[] => {
      notes.push(`could not read this ${name} frame: ${why}`);
      return p.length ? [{ length: p.length, label: `${p.length} bytes of payload, not read: ${why}`, kind: "frame-payload" }] : [];
    };
    const fixed = FIXED_PAYLOAD[type];
    if (fixed !== undefined && p.length !== fixed) return unread(`its payload is ${p.length} bytes, a ${name} frame's is ${fixed}`);
    if (type === 7 && p.length < 8) return unread(`its payload is ${p.length} bytes, a GOAWAY frame's is at least 8`);
    let out: Segment[];
    try {
      out = this.payloadSegments(type, flags, p, notes);
    } catch (err) {
      return unread(err instanceof Error ? err.message : String(err));
    }
    const sum = out.reduce((n, s) => n + s.length, 0);
    return sum === p.length ? out : unread(`its parts (${sum} bytes) do not add up to its length (${p.length})`);
  }

  private payloadSegments(type: number, flags: number, p: Buffer, notes: string[]): Segment[] {
    const body = (length: number, label: string): Segment => ({ length, label, kind: "frame-payload" });
    if (p.length === 0) return [];
    switch (type) {
      case 0: // DATA: gRPC messages, each with its 5-byte prefix
        if (p.length >= PREFIX_SIZE && p.readUInt32BE(1) + PREFIX_SIZE === p.length) return prefixSegments(p);
        return [body(p.length, `${p.length} bytes of DATA`)];
      case 1: {
        // HEADERS: optional padding and priority, then the HPACK block
        const out: Segment[] = [];
        let start = 0;
        let pad = 0;
        if (flags & 0x8) {
          pad = p[0]!;
          out.push(body(1, `pad length ${pad}`));
          start = 1;
        }
        if (flags & 0x20) {
          out.push(body(5, "priority: stream dependency and weight"));
          start += 5;
        }
        if (start + pad > p.length) throw new Error(`its padding and priority (${start + pad} bytes) are longer than its ${p.length}-byte payload`);
        out.push(...this.hpackSegments(p.subarray(start, p.length - pad), notes));
        if (pad) out.push(body(pad, "padding"));
        return out;
      }
      case 4: {
        const out: Segment[] = [];
        for (let i = 0; i + 6 <= p.length; i += 6) {
          const id = p.readUInt16BE(i);
          out.push(body(6, `setting ${id} ${SETTINGS[id] || "(unknown)"} = ${p.readUInt32BE(i + 2)}`));
        }
        return out;
      }
      case 8:
        return [body(4, `window increment ${p.readUInt32BE(0) & 0x7fffffff} bytes: the peer may send that much more`)];
      case 3:
        return [body(4, errorCode(p.readUInt32BE(0)))];
      case 6:
        return [body(8, "8 opaque bytes the peer echoes back")];
      case 7:
        return [body(4, `last stream ${p.readUInt32BE(0) & 0x7fffffff}`), body(4, errorCode(p.readUInt32BE(4))), ...(p.length > 8 ? [body(p.length - 8, "debug data")] : [])];
      default:
        return [body(p.length, `${p.length} bytes of payload`)];
    }
  }

  /**
   * One segment per HPACK representation, named after the header it decodes
   * to. A block that does not decode (an index past the table, a string
   * longer than the block, bad Huffman code) keeps the headers decoded
   * before the fault and gets a note saying what it was. The decoder is
   * then replaced: its table may no longer be the peer's (the peer has
   * broken the connection anyway; HTTP/2 ends it with COMPRESSION_ERROR).
   */
  private hpackSegments(block: Buffer, notes: string[]): Segment[] {
    const reps = hpackRepresentations(block);
    const decoder = this.hpack;
    const headers: { name: string; value: string }[] = [];
    try {
      decoder.write(block);
      decoder.execute(); // a fault is emitted as 'error', which with no listener is thrown here
    } catch (err) {
      notes.push(`could not decode this header block: ${err instanceof Error ? err.message : String(err)}`);
      this.hpack = newDecompressor();
    }
    for (let h = decoder.read(); h !== null; h = decoder.read()) headers.push(h);
    let next = 0;
    return reps.map((r) => {
      if (r.form === "size-update") return { length: r.length, label: "HPACK: dynamic table size update", kind: "hpack" };
      const h = headers[next++];
      const text = h ? `${h.name}: ${h.value}` : "(could not decode)";
      return { length: r.length, label: `HPACK ${r.describe}: ${text}`, kind: "hpack" };
    });
  }
}

function newDecompressor(): Decompressor {
  return hpack.decompressor.create({ table: { maxSize: 4096 } });
}

interface Representation {
  readonly length: number;
  readonly form: "indexed" | "literal" | "size-update";
  readonly describe: string;
}

/** Where each HPACK representation of a header block starts and ends (RFC 7541 §6), without decoding strings. */
export function hpackRepresentations(block: Buffer): Representation[] {
  const out: Representation[] = [];
  let pos = 0;
  const int = (prefixBits: number): number => {
    const max = (1 << prefixBits) - 1;
    let v = block[pos++]! & max;
    if (v < max) return v;
    for (let shift = 0; pos < block.length; shift += 7) {
      const b = block[pos++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    return v;
  };
  const str = (): boolean => {
    const huffman = (block[pos]! & 0x80) !== 0; // the H bit shares the first byte with the length
    const len = int(7);
    pos += len;
    return huffman;
  };
  while (pos < block.length) {
    const start = pos;
    const b = block[pos]!;
    if (b & 0x80) {
      const index = int(7);
      out.push({ length: pos - start, form: "indexed", describe: `indexed field ${index} (${index <= 61 ? "static" : "dynamic"} table)` });
      continue;
    }
    if ((b & 0xe0) === 0x20) {
      int(5);
      out.push({ length: pos - start, form: "size-update", describe: "table size update" });
      continue;
    }
    const incremental = (b & 0xc0) === 0x40;
    const kind = incremental ? "literal, added to the table" : (b & 0xf0) === 0x10 ? "literal, never indexed" : "literal, not indexed";
    const nameIndex = int(incremental ? 6 : 4);
    const nameHuff = nameIndex === 0 ? str() : false;
    const valueHuff = str();
    // Each string has its own H bit: say which of them is Huffman-coded and which is plain text.
    const coded = (h: boolean) => (h ? "Huffman-coded" : "plain");
    const huff = nameIndex ? `, value ${coded(valueHuff)}` : nameHuff === valueHuff ? `, name and value ${coded(valueHuff)}` : `, name ${coded(nameHuff)}, value ${coded(valueHuff)}`;
    out.push({ length: pos - start, form: "literal", describe: `${kind}${nameIndex ? `, name from index ${nameIndex}` : ", new name"}${huff}` });
  }
  return out;
}

/**
 * A socket wrapped so that every byte written and read is shown to `tap`
 * first; node:http2 accepts any duplex stream as its connection.
 */
export function tappedSocket(socket: net.Socket, tap: (direction: "out" | "in", chunk: Buffer) => void): Duplex {
  const duplex = new Duplex({
    write(chunk: Buffer, _enc, done) {
      tap("out", chunk);
      socket.write(chunk, done);
    },
    final(done) {
      socket.end(done);
    },
    read() {
      socket.resume();
    },
    destroy(err, done) {
      socket.destroy(err ?? undefined);
      done(err);
    },
  });
  socket.on("data", (chunk: Buffer) => {
    tap("in", chunk);
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on("end", () => duplex.push(null));
  socket.on("error", (err) => duplex.destroy(err));
  socket.on("close", () => duplex.destroy());
  return duplex;
}
