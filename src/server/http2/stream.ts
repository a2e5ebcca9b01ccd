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
 *
 * A request's header fields have rules of their own (RFC 9113 §8.2, §8.3):
 * lowercase names, no CR, LF or NUL in a value, the pseudo-headers a
 * request has (:method, :scheme, :path, :authority) each at most once and
 * before every other field, none in trailers, and nothing that names one
 * hop's connection (Connection, Keep-Alive, TE but "trailers"…). A request
 * that breaks one is malformed, and its stream is reset (PROTOCOL_ERROR)
 * unanswered, as Go's server does.
 */
import type { HeaderField } from "./hpack";
import { ReceiveWindow } from "./receive-window";

const REQUEST_PSEUDO_HEADERS = new Set([":method", ":scheme", ":path", ":authority"]);
/** Fields about one hop's connection (RFC 9113 §8.2.2): HTTP/2 has its own, and an HTTP/1 proxy would act on them. */
const CONNECTION_SPECIFIC = new Set(["connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"]);
/** A field name: visible ASCII but uppercase letters and the colon (§8.2.1). */
const FIELD_NAME = /^[\x21-\x39\x3b-\x40\x5b-\x7e]+$/;

/** What makes a request's header fields, or its trailers', malformed; undefined when nothing does. */
export function malformed(fields: readonly HeaderField[], trailers: boolean): string | undefined {
  const pseudo = new Map<string, string>();
  let regular = false;
  for (const [name, value] of fields) {
    if (/[\0\r\n]/.test(value)) return `the value of ${name} holds a NUL, CR or LF`;
    if (name.startsWith(":")) {
      if (trailers) return `the pseudo-header ${name} in trailers`;
      if (regular) return `the pseudo-header ${name} after a regular field`;
      if (!REQUEST_PSEUDO_HEADERS.has(name)) return `the pseudo-header ${name}, which no request has`;
      if (pseudo.has(name)) return `${name} twice`;
      pseudo.set(name, value);
      continue;
    }
    regular = true;
    if (!FIELD_NAME.test(name)) return `the field name ${JSON.stringify(name)} (uppercase, or a character no name has)`;
    if (CONNECTION_SPECIFIC.has(name)) return `the connection-specific field ${name}`;
    if (name === "te" && value !== "trailers") return `te: ${value} (only "trailers" may be sent)`;
  }
  if (trailers) return undefined;
  const method = pseudo.get(":method");
  if (method === undefined) return "no :method";
  // A CONNECT has neither (it is answered 405); every other request has both, and its :path is not empty.
  if (method !== "CONNECT" && (!pseudo.has(":scheme") || !pseudo.get(":path"))) return "no :scheme, or no :path or an empty one";
  return undefined;
}

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
