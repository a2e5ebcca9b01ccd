// A raw HTTP/2 client for wire tests: it sends frames as given (src/server/http2/frames.ts builds
// them) and keeps every frame the server sends, header blocks decoded.
import * as net from "node:net";
import { encodeWithoutIndexing, FLAG, frame, PREFACE, TYPE } from "../../src/server/http2/frames";
import { HpackDecoder } from "../../src/server/http2/hpack";

export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** A HEADERS frame's fields (its block is whole: the server sends no CONTINUATION for small blocks). */
  fields?: [string, string][];
}

export const EMPTY = Buffer.alloc(0);

export class RawClient {
  readonly frames: RawFrame[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private readonly hpack = new HpackDecoder();
  constructor(readonly sock: net.Socket) {
    sock.on("data", (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        const f: RawFrame = { type: this.buf[3]!, flags: this.buf[4]!, streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
        if (f.type === TYPE.HEADERS || f.type === TYPE.CONTINUATION) f.fields = this.hpack.decode(f.payload).fields;
        this.frames.push(f);
        this.buf = this.buf.subarray(9 + len);
      }
      this.wake();
    });
    sock.on("close", () => {
      this.closed = true;
      this.wake();
    });
    sock.on("error", () => {});
  }

  /** Connect, and send nothing: the test writes the preface itself, in the order it means to. */
  static async connect(socketPath: string): Promise<RawClient> {
    const sock = net.connect(socketPath);
    await new Promise((resolve, reject) => sock.once("connect", resolve).once("error", reject));
    return new RawClient(sock);
  }

  /** Connect, send the preface and `settings` (a SETTINGS payload), and ACK the server's SETTINGS. */
  static async open(socketPath: string, settings: Buffer = EMPTY): Promise<RawClient> {
    const raw = await RawClient.connect(socketPath);
    raw.send(PREFACE, frame(TYPE.SETTINGS, 0, 0, settings), frame(TYPE.SETTINGS, FLAG.ACK, 0, EMPTY));
    return raw;
  }

  /** ACK every SETTINGS the server sent that is not ACKed yet. */
  ackSettings(): void {
    const n = this.frames.filter((f) => f.type === TYPE.SETTINGS && !(f.flags & FLAG.ACK)).length;
    for (; this.acked < n; this.acked++) this.send(frame(TYPE.SETTINGS, FLAG.ACK, 0, EMPTY));
  }
  private acked = 0;

  send(...frames: Buffer[]): void {
    this.sock.write(Buffer.concat(frames));
  }

  private wake(): void {
    for (const f of this.waiters.splice(0)) f();
  }

  /** Wait until `test` holds of what arrived (or fail after `ms`). */
  async until<T>(what: string, test: () => T | undefined | false, ms = 5000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = test();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; got frames ${JSON.stringify(this.frames.map((f) => [f.type, f.flags, f.streamId]))}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  /** The GOAWAY's error code once the server has sent one and closed. */
  async goaway(): Promise<number> {
    const g = await this.until("a GOAWAY", () => this.frames.find((f) => f.type === TYPE.GOAWAY));
    await this.until("the connection to close", () => this.closed);
    return g.payload.readUInt32BE(4);
  }

  /** The RST_STREAM code the server sent on `streamId`. */
  async reset(streamId: number): Promise<number> {
    const r = await this.until(`RST_STREAM on ${streamId}`, () => this.frames.find((f) => f.type === TYPE.RST_STREAM && f.streamId === streamId));
    return r.payload.readUInt32BE(0);
  }

  /** The answer on `streamId` once it has ended: its header fields, all of them, and its DATA bytes. */
  async answer(streamId: number): Promise<{ fields: Map<string, string>; data: Buffer }> {
    const ended = (f: RawFrame) => f.streamId === streamId && (f.type === TYPE.HEADERS || f.type === TYPE.DATA) && (f.flags & FLAG.END_STREAM) !== 0;
    await this.until(`the answer on ${streamId}`, () => this.frames.some(ended));
    const on = this.frames.filter((f) => f.streamId === streamId);
    return {
      fields: new Map(on.flatMap((f) => f.fields ?? [])),
      data: Buffer.concat(on.filter((f) => f.type === TYPE.DATA).map((f) => f.payload)),
    };
  }

  close(): void {
    this.sock.destroy();
  }
}

/** A gRPC request's header block: POST `path`, content-type application/grpc, `authority` (null: none), and `extra` fields. */
export function requestBlock(path: string, extra: [string, string][] = [], authority: string | null = "localhost"): Buffer {
  return encodeWithoutIndexing([
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    ...(authority === null ? [] : [[":authority", authority] as [string, string]]),
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra,
  ]);
}

/** A gRPC message: the 5-byte prefix and `body`. */
export function grpcMessage(body: Uint8Array = EMPTY): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}
