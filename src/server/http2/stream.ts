/**
 * One HTTP/2 stream as the server sees it: a request and its answer.
 *
 * A client opens a stream with a HEADERS frame on a new odd id; the
 * request's body follows in DATA frames, the last marked END_STREAM. The
 * server answers on the same stream: HEADERS, DATA, and trailers (a last
 * HEADERS with END_STREAM), or one HEADERS with END_STREAM for an answer
 * with no body. Either side may end it early with RST_STREAM. A plain
 * object with callbacks: the connection (connection.ts) calls them, and
 * the gRPC server (grpc-server.ts) sets them.
 */
import { ReceiveWindow } from "./receive-window";

export class Stream {
  /** A DATA payload of the request's body; valid only during the call unless kept. */
  onData: ((chunk: Buffer) => void) | undefined;
  /** The request is whole: the client ended its side. */
  onEnd: (() => void) | undefined;
  /**
   * The stream is over: answered, reset by the client, or its connection
   * gone. Called once; the answer may not have gone out.
   */
  onClose: (() => void) | undefined;

  /** The client sent END_STREAM. */
  remoteEnded = false;
  /** The answer's HEADERS went out or are queued: nothing more may be answered. */
  answered = false;
  closed = false;

  /** Bytes the client lets us send on this stream (its window; may go below 0 when it shrinks INITIAL_WINDOW_SIZE). */
  sendWindow: number;
  /** What we let the client send on this stream. */
  readonly recv: ReceiveWindow;
  /** The answer's body still to send (waiting for window), and its trailers' frames. */
  pendingData: Buffer | undefined;
  pendingTrailers: Buffer | undefined;

  constructor(
    readonly id: number,
    /** The request's header fields; a repeated name keeps its first value. */
    readonly headers: ReadonlyMap<string, string>,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recv = new ReceiveWindow(recvWindow);
  }
}
