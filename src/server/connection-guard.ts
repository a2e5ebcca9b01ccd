/**
 * The connection guard: what stands between each client socket and the
 * gRPC server.
 *
 * The server owns the accept step (server.ts) and hands grpc-js this
 * Duplex instead of the socket. It reads the client's HTTP/2 frames on
 * their way in and does two things grpc-js does not:
 *
 *   - repairs an invalid `:authority` (old kubelets send the socket path;
 *     see authority.ts);
 *   - checks each request's gRPC framing (request-framing.ts) and refuses a
 *     request whose 5-byte message prefix lies — a compressed flag without
 *     a `grpc-encoding`, a length that disagrees with the bytes sent — so
 *     grpc-js never hands a handler a message it made up from broken bytes.
 *
 * Refusing a request, in HTTP/2 terms: the frame that showed the fault is
 * not forwarded; the server gets RST_STREAM(CANCEL) for the stream (a
 * unary handler only runs once the request stream has ended, so it never
 * runs); the client gets the call's answer from the guard itself — a
 * "trailers-only" HEADERS frame with grpc-status 13 (INTERNAL) and a
 * message saying what was wrong, encoded so that neither end's HPACK table
 * changes. Whatever the server still sends on that stream is dropped. Two
 * kinds of bookkeeping keep the connection healthy afterwards: DATA bytes
 * dropped in either direction are handed back to their sender as a
 * connection-level WINDOW_UPDATE (flow control counts them), and the
 * guard's own frames go to the client only between two of the server's
 * frames.
 *
 * The server's bytes are followed frame by frame (only the 9-byte headers
 * are read), to know which streams it has already answered. Measured on
 * recorded traffic: about 6 µs of CPU per call, half of it decoding the
 * request's header block (the grpc-js call itself costs ~250 µs).
 */
import { Duplex } from "node:stream";
import type { Socket } from "node:net";
import { fixAuthority, hasBadAuthority, HeaderCodec, type Header } from "./authority";
import {
  dataOf,
  encodeWithoutIndexing,
  ERROR_CODE,
  FLAG,
  frame,
  FRAME_HEADER,
  FrameReader,
  FrameTracker,
  headerFrames,
  rstStream,
  TYPE,
  windowUpdate,
  withoutEndStream,
  type Frame,
  type HeaderBlock,
} from "./http2-frames";
import { RequestFraming } from "./request-framing";

const GRPC_INTERNAL = 13;
/** How many streams the guard answered itself are remembered, to drop the server's late frames on them. */
const ANSWERED_MEMORY = 1024;

export interface GuardEvents {
  /** A client's invalid :authority was replaced. */
  rewrote?(from: string): void;
  /** A request was refused for broken framing. */
  refused?(problem: string, path: string | undefined): void;
}

interface RequestStream {
  framing: RequestFraming;
  path: string | undefined;
  /** What the server has sent on this stream so far. */
  response: "none" | "started" | "done";
}

export class ConnectionGuard extends Duplex {
  /** "blind": not HTTP/2, or a header block we could not decode — bytes pass untouched, the server judges. */
  private blind = false;
  private rewriting = false;
  private readonly codec = new HeaderCodec();
  private readonly reader: FrameReader;
  private readonly server = new FrameTracker();
  /** Requests whose bytes are still arriving. */
  private readonly streams = new Map<number, RequestStream>();
  /** Streams the guard answered itself (insertion order: oldest first). */
  private readonly answered = new Set<number>();
  /** Frames of ours waiting for the next boundary between the server's frames. */
  private toClient: Buffer[] = [];
  /** Bytes for the server, collected while one chunk of the client's is read. */
  private out: Buffer[] = [];
  /** RST_STREAM frames for the server, sent a turn of the event loop later (see resetLater). */
  private resets: Buffer[] = [];

  /** `initial`: bytes of the client's already read from the socket (first-request.ts), to be taken first. */
  constructor(
    private readonly socket: Socket,
    private readonly events: GuardEvents = {},
    initial?: Buffer,
  ) {
    super();
    this.reader = new FrameReader({
      preface: (raw) => this.out.push(raw),
      frame: (f) => this.onFrame(f),
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
    let frames = h.frames;
    if (this.rewriting) {
      const fixed = fixAuthority(headers, (from) => this.events.rewrote?.(from));
      frames = headerFrames(this.codec.encode(fixed), h.flags, h.streamId, h.priority);
    }
    const ends = (h.flags & FLAG.END_STREAM) !== 0;
    let stream = this.streams.get(h.streamId);
    if (!stream && !this.answered.has(h.streamId)) {
      let encoding: string | undefined;
      let path: string | undefined;
      let grpc = false;
      for (const x of headers) {
        if (x.name === "grpc-encoding") encoding = x.value;
        else if (x.name === ":path") path = x.value;
        else if (x.name === "content-type") grpc = x.value.startsWith("application/grpc");
      }
      // Only gRPC requests are framed as gRPC; grpc-js answers anything else (415) itself.
      if (grpc) {
        stream = { framing: new RequestFraming(encoding), path, response: "none" };
        this.streams.set(h.streamId, stream);
      }
    }
    const problem = stream && ends ? stream.framing.end() : undefined;
    if (stream && problem && stream.response !== "done") {
      // The block goes on (the server's HPACK table must see it), but not the end of the stream.
      this.out.push(...frames.map((f, i) => (i === 0 ? withoutEndStream(f) : f)));
      this.refuse(h.streamId, stream, problem, 0, true);
      return;
    }
    this.out.push(...frames);
    if (ends) this.streams.delete(h.streamId);
  }

  private onFrame(f: Frame): void {
    if (this.blind || f.streamId === 0) return void this.out.push(f.raw);
    if (this.answered.has(f.streamId)) {
      if (f.type === TYPE.DATA) this.refund(f.raw.length - FRAME_HEADER);
      if (f.type === TYPE.PRIORITY) this.out.push(f.raw);
      return; // the server has reset this stream; nothing else may reach it
    }
    const stream = this.streams.get(f.streamId);
    if (f.type === TYPE.RST_STREAM) {
      this.streams.delete(f.streamId);
      return this.resetLater(f.raw);
    }
    if (f.type !== TYPE.DATA || !stream) return void this.out.push(f.raw);
    const ends = (f.flags & FLAG.END_STREAM) !== 0;
    const problem = stream.framing.push(dataOf(f)) ?? (ends ? stream.framing.end() : undefined);
    if (problem && stream.response !== "done") {
      this.refuse(f.streamId, stream, problem, f.raw.length - FRAME_HEADER, ends);
      return;
    }
    this.out.push(f.raw);
    if (ends || problem) this.streams.delete(f.streamId); // (answered already by the server: its answer stands)
  }

  /** Answer the request on `streamId` ourselves, and make the server forget it. */
  private refuse(streamId: number, stream: RequestStream, problem: string, droppedBytes: number, clientEnded: boolean): void {
    this.streams.delete(streamId);
    this.answered.add(streamId);
    if (this.answered.size > ANSWERED_MEMORY) this.answered.delete(this.answered.values().next().value!);
    this.resetLater(rstStream(streamId, ERROR_CODE.CANCEL));
    const mine: Buffer[] = [];
    if (droppedBytes > 0) mine.push(windowUpdate(0, droppedBytes));
    if (stream.response === "started") {
      mine.push(rstStream(streamId, ERROR_CODE.INTERNAL_ERROR)); // a reply had begun: it can only be cut off
    } else {
      mine.push(trailersOnly(streamId, `the request's gRPC framing is broken: ${problem}`));
      if (!clientEnded) mine.push(rstStream(streamId, ERROR_CODE.NO_ERROR)); // "stop sending"
    }
    this.events.refused?.(problem, stream.path);
    this.toClient.push(...mine);
    if (this.server.atBoundary) this.flushToClient();
  }

  /**
   * Send a RST_STREAM to the server after its session has handled what came
   * before. grpc-js answers some requests (an unknown method, a wrong
   * content-type) from its "stream" event, which Node emits on the next
   * tick; had the same read also carried the stream's reset, the stream is
   * gone by then, and grpc-js's reply throws out of the event — which ends
   * the driver. So resets wait for setImmediate, after those ticks.
   */
  private resetLater(rst: Buffer): void {
    this.resets.push(rst);
    if (this.resets.length > 1) return;
    setImmediate(() => {
      const frames = this.resets;
      this.resets = [];
      if (!this.destroyed) this.toServer(frames);
    });
  }

  /** Give the client back the flow-control window of DATA bytes the server will never see. */
  private refund(bytes: number): void {
    if (bytes > 0) this.toClient.push(windowUpdate(0, bytes));
    if (this.server.atBoundary) this.flushToClient();
  }

  private flushToClient(): void {
    if (this.toClient.length === 0) return;
    const frames = this.toClient;
    this.toClient = [];
    this.socket.write(Buffer.concat(frames));
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
    if (this.blind) return void this.socket.write(chunk, cb);
    const bytes = this.server.walk(
      chunk,
      (type, flags, streamId, length) => {
        if (streamId !== 0 && this.answered.has(streamId)) {
          // Late frames on a stream we answered: the client must not see them; give the server its window back.
          if (type === TYPE.DATA && length > 0) this.toServer([windowUpdate(0, length)]);
          return false;
        }
        const stream = this.streams.get(streamId);
        if (stream && (type === TYPE.HEADERS || type === TYPE.DATA || type === TYPE.RST_STREAM)) {
          stream.response = flags & FLAG.END_STREAM || type === TYPE.RST_STREAM ? "done" : "started";
        }
        return true;
      },
      () => {
        // A boundary between two of the server's frames: our own frames may go here.
        const mine = this.toClient;
        this.toClient = [];
        return mine;
      },
    );
    this.socket.write(bytes, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy(err ?? undefined);
    cb(err);
  }
}

/** A gRPC call answered with only trailers: HTTP 200, grpc-status INTERNAL and a message. */
function trailersOnly(streamId: number, message: string): Buffer {
  const block = encodeWithoutIndexing([
    [":status", "200"],
    ["content-type", "application/grpc"],
    ["grpc-status", String(GRPC_INTERNAL)],
    ["grpc-message", percentEncode(message)],
  ]);
  return frame(TYPE.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, streamId, block);
}

/** grpc-message is percent-encoded: bytes outside printable ASCII, and "%" itself (gRPC PROTOCOL-HTTP2.md). */
function percentEncode(s: string): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  return out;
}
