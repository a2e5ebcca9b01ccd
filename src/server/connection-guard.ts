/**
 * The connection guard: what stands between an old kubelet's socket and
 * the gRPC server.
 *
 * Old kubelets send the socket's path as `:authority`, which Node's HTTP/2
 * server refuses (authority.ts). first-request.ts sends such a connection
 * here instead of straight to nghttp2. The guard is a Duplex the server
 * reads and writes as if it were the socket: the client's bytes are read
 * frame by frame, and every header block is decoded; once a block with an
 * invalid authority has been seen, every block is encoded again for the
 * server with "localhost" in its place (HPACK state spans the connection,
 * so a header cannot be patched in place). All other frames, and
 * everything the server sends, pass as they are. The server checks each
 * request's gRPC framing itself (grpc-server.ts), here as on any other
 * connection.
 */
import { Duplex } from "node:stream";
import type { Socket } from "node:net";
import { fixAuthority, hasBadAuthority, HeaderCodec, type Header } from "./authority";
import { FrameReader, headerFrames, type HeaderBlock } from "./http2-frames";

export interface GuardEvents {
  /** A client's invalid :authority was replaced. */
  rewrote?(from: string): void;
}

export class ConnectionGuard extends Duplex {
  /** "blind": not HTTP/2, or a header block we could not decode — bytes pass untouched, the server judges. */
  private blind = false;
  private rewriting = false;
  private readonly codec = new HeaderCodec();
  private readonly reader: FrameReader;
  /** Bytes for the server, collected while one chunk of the client's is read. */
  private out: Buffer[] = [];

  /** `initial`: bytes of the client's already read from the socket (first-request.ts), to be taken first. */
  constructor(
    private readonly socket: Socket,
    private readonly events: GuardEvents = {},
    initial?: Buffer,
  ) {
    super();
    this.reader = new FrameReader({
      preface: (raw) => this.out.push(raw),
      frame: (f) => this.out.push(f.raw),
      headers: (h) => this.onHeaders(h),
    });
    if (initial && initial.length > 0) this.onData(initial);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("end", () => this.push(null));
    socket.on("error", (err) => this.destroy(err));
    socket.on("close", () => this.destroy());
  }

  private onData(chunk: Buffer): void {
    if (this.blind) return this.toServer([chunk]);
    this.out = [];
    if (!this.reader.push(chunk)) {
      this.blind = true; // not HTTP/2 with prior knowledge: let the server say so
      this.out.push(this.reader.takeRest());
    }
    this.toServer(this.out);
  }

  private onHeaders(h: HeaderBlock): void {
    if (this.blind) return void this.out.push(...h.frames);
    let headers: Header[];
    try {
      headers = this.codec.decode(h.block);
    } catch {
      // Our HPACK state is lost with this block: stop looking; the server will reject it itself.
      this.blind = true;
      return void this.out.push(...h.frames, this.reader.takeRest());
    }
    if (!this.rewriting && hasBadAuthority(headers)) this.rewriting = true;
    if (!this.rewriting) return void this.out.push(...h.frames);
    const fixed = fixAuthority(headers, (from) => this.events.rewrote?.(from));
    this.out.push(...headerFrames(this.codec.encode(fixed), h.flags, h.streamId, h.priority));
  }

  private toServer(parts: Buffer[]): void {
    if (parts.length === 0) return;
    if (!this.push(parts.length === 1 ? parts[0] : Buffer.concat(parts))) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  /** The server's bytes, on their way to the client. */
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
