/**
 * Accepting the `:authority` that older kubelets send.
 *
 * Every HTTP/2 request names its target host in the `:authority` pseudo-
 * header. Over a unix socket there is no host, and older Go gRPC clients
 * (kubelet before 1.26, some sidecars) put the socket's path there instead:
 * `:authority: /var/lib/kubelet/plugins/…/csi.sock`. A path is not a valid
 * authority, and Node's HTTP/2 server (nghttp2) resets such a stream with
 * PROTOCOL_ERROR before any of our code runs — the driver would look dead
 * to those kubelets. Other Node drivers ship a separate proxy for this.
 *
 * We fix it in-process. HTTP/2 headers are HPACK-compressed with state that
 * spans the whole connection, so a header cannot be patched in place. Each
 * connection's client bytes are watched up to its first request's headers.
 * If the authority is fine (every current client) the guard steps aside and
 * forwards bytes untouched (measured: about 10 µs per call). If not, it
 * decodes every header block, replaces the bad authority with "localhost",
 * and encodes the block again for the server.
 */
import { Duplex } from "node:stream";
import type { Socket } from "node:net";
import hpack, { type Compressor, type Decompressor } from "hpack.js";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const FRAME_HEADER = 9;
const TYPE_HEADERS = 0x1;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** SETTINGS_MAX_FRAME_SIZE that Node's server advertises unless told otherwise. */
const MAX_FRAME = 16384;
/** SETTINGS_HEADER_TABLE_SIZE, likewise. */
const TABLE_SIZE = 4096;

// RFC 3986 authority: host (reg-name, IPv4, [IPv6]), optional port,
// optional userinfo. Anything with "/" or whitespace is not one.
const VALID_AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%[\]]*$/;

export function isValidAuthority(value: string): boolean {
  return VALID_AUTHORITY.test(value);
}

interface Header {
  name: string;
  value: string;
  neverIndex?: boolean;
}

/** Splits the client→server byte stream into HTTP/2 frames and header blocks. */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  private prefaceDone = false;
  private blockParts: Buffer[] = [];
  private blockStart: { flags: number; streamId: number; priority: Buffer | undefined } | undefined;

  constructor(
    private readonly onFrame: (raw: Buffer) => void,
    private readonly onHeaderBlock: (block: Buffer, flags: number, streamId: number, priority: Buffer | undefined, raw: Buffer[]) => void,
  ) {}

  private rawBlockFrames: Buffer[] = [];
  private stopped = false;

  /** Stop parsing after the current frame; see takeRest. */
  stop(): void {
    this.stopped = true;
  }

  /** Bytes received but not yet parsed (including any partial header block). */
  takeRest(): Buffer {
    const rest = Buffer.concat([...this.rawBlockFrames, this.buf]);
    this.buf = Buffer.alloc(0);
    this.rawBlockFrames = [];
    this.blockStart = undefined;
    return rest;
  }

  /** Returns false if the bytes are not HTTP/2 with prior knowledge. */
  push(chunk: Buffer): boolean {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (!this.prefaceDone) {
      const n = Math.min(this.buf.length, PREFACE.length);
      if (!this.buf.subarray(0, n).equals(PREFACE.subarray(0, n))) return false;
      if (this.buf.length < PREFACE.length) return true;
      const preface = this.buf.subarray(0, PREFACE.length);
      this.buf = this.buf.subarray(PREFACE.length);
      this.prefaceDone = true;
      this.onFrame(preface);
    }
    while (!this.stopped && this.buf.length >= FRAME_HEADER) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < FRAME_HEADER + len) break;
      const raw = this.buf.subarray(0, FRAME_HEADER + len);
      this.buf = this.buf.subarray(FRAME_HEADER + len);
      const type = raw[3]!;
      const flags = raw[4]!;
      const streamId = raw.readUInt32BE(5) & 0x7fffffff;
      if (type === TYPE_HEADERS) {
        let payload = raw.subarray(FRAME_HEADER);
        let pad = 0;
        if (flags & FLAG_PADDED) {
          pad = payload[0]!;
          payload = payload.subarray(1);
        }
        let priority: Buffer | undefined;
        if (flags & FLAG_PRIORITY) {
          priority = Buffer.from(payload.subarray(0, 5));
          payload = payload.subarray(5);
        }
        payload = payload.subarray(0, payload.length - pad);
        this.blockStart = { flags, streamId, priority };
        this.blockParts = [payload];
        this.rawBlockFrames = [raw];
        if (flags & FLAG_END_HEADERS) this.finishBlock();
      } else if (type === TYPE_CONTINUATION && this.blockStart) {
        this.blockParts.push(raw.subarray(FRAME_HEADER));
        this.rawBlockFrames.push(raw);
        if (flags & FLAG_END_HEADERS) this.finishBlock();
      } else {
        this.onFrame(raw);
      }
    }
    return true;
  }

  private finishBlock(): void {
    const start = this.blockStart!;
    const parts = this.blockParts;
    const raw = this.rawBlockFrames;
    this.blockStart = undefined;
    this.blockParts = [];
    this.rawBlockFrames = [];
    this.onHeaderBlock(Buffer.concat(parts), start.flags, start.streamId, start.priority, raw);
  }
}

function decodeBlock(decomp: Decompressor, block: Buffer): Header[] {
  decomp.write(block);
  decomp.execute();
  const out: Header[] = [];
  for (let h = decomp.read() as Header | null; h !== null; h = decomp.read() as Header | null) out.push(h);
  return out;
}

function encodeBlock(comp: Compressor, headers: Header[]): Buffer {
  comp.write(headers);
  const parts: Buffer[] = [];
  for (let b = comp.read() as Buffer | null; b !== null; b = comp.read() as Buffer | null) parts.push(b);
  return Buffer.concat(parts);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(FRAME_HEADER);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** A HEADERS frame (+ CONTINUATIONs) carrying `block`. */
function headerFrames(block: Buffer, flags: number, streamId: number, priority: Buffer | undefined): Buffer[] {
  const keep = (flags & FLAG_END_STREAM) | (priority ? FLAG_PRIORITY : 0);
  const firstRoom = MAX_FRAME - (priority ? 5 : 0);
  const frames: Buffer[] = [];
  let rest = block;
  let first = true;
  do {
    const room = first ? firstRoom : MAX_FRAME;
    const part = rest.subarray(0, room);
    rest = rest.subarray(part.length);
    const end = rest.length === 0 ? FLAG_END_HEADERS : 0;
    frames.push(
      first
        ? frame(TYPE_HEADERS, keep | end, streamId, priority ? Buffer.concat([priority, part]) : part)
        : frame(TYPE_CONTINUATION, end, streamId, part),
    );
    first = false;
  } while (rest.length > 0);
  return frames;
}

/**
 * Stands between a client socket and the gRPC server. It forwards the
 * client's bytes frame by frame until the first request's headers arrive;
 * if their authority is valid it forwards everything after that untouched
 * and stops looking. Otherwise it stays in the path and re-encodes every
 * header block with a valid authority. The server's bytes go back to the
 * client unchanged. (The server must be connected from the first byte: a
 * gRPC client waits for the server's SETTINGS before sending a request.)
 */
export class AuthorityGuard extends Duplex {
  private mode: "sniff" | "pass" | "rewrite" = "sniff";
  private readonly decomp = hpack.decompressor.create({ table: { maxSize: TABLE_SIZE } });
  private readonly comp = hpack.compressor.create({ table: { maxSize: TABLE_SIZE } });
  private readonly reader: FrameReader;

  constructor(
    private readonly socket: Socket,
    private readonly onRewrite: (from: string) => void = () => undefined,
  ) {
    super();
    this.reader = new FrameReader(
      (raw) => this.pushOut(raw),
      (block, flags, streamId, priority, rawFrames) => this.onBlock(block, flags, streamId, priority, rawFrames),
    );
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => this.destroy());
  }

  /** "sniff" until the first request, then "pass" or "rewrite". */
  get state(): string {
    return this.mode;
  }

  private onData(chunk: Buffer): void {
    if (this.mode === "pass") {
      this.pushOut(chunk);
      return;
    }
    try {
      if (!this.reader.push(chunk)) this.passRest(); // not HTTP/2: let the server say so
      else if (this.state === "pass") this.passRest(); // the first request decided it
    } catch {
      this.passRest(); // undecodable headers: the server will reject them itself
    }
  }

  private passRest(): void {
    this.mode = "pass";
    const rest = this.reader.takeRest();
    if (rest.length > 0) this.pushOut(rest);
  }

  private onBlock(block: Buffer, flags: number, streamId: number, priority: Buffer | undefined, rawFrames: Buffer[]): void {
    const headers = decodeBlock(this.decomp, block);
    if (this.mode === "sniff") {
      const bad = headers.some((h) => h.name === ":authority" && !isValidAuthority(h.value));
      if (!bad) {
        this.reader.stop();
        this.mode = "pass";
        for (const f of rawFrames) this.pushOut(f);
        return;
      }
      this.mode = "rewrite";
    }
    const fixed = headers.map((h) => {
      if (h.name !== ":authority" || isValidAuthority(h.value)) return h;
      this.onRewrite(h.value);
      return { name: h.name, value: "localhost" };
    });
    for (const f of headerFrames(encodeBlock(this.comp, fixed), flags, streamId, priority)) this.pushOut(f);
  }

  private pushOut(b: Buffer): void {
    if (!this.push(b)) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.socket.write(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy(err ?? undefined);
    cb(err);
  }
}
