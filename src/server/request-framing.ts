/**
 * gRPC's message framing, checked on a request stream.
 *
 * gRPC carries each message in the HTTP/2 body as a "length-prefixed
 * message": one byte, the compressed flag (0, or 1 when the message is
 * compressed with the algorithm the request's `grpc-encoding` header
 * names), four bytes of length (big-endian), then exactly that many bytes.
 * A unary call — every CSI method is one — sends exactly one message and
 * then ends the stream.
 *
 * A lenient reader turns a broken request into a different, well-formed
 * one, which the handler then carries out — grpc-js's server, which we
 * used before, read a compressed flag with no `grpc-encoding` as
 * uncompressed, dropped bytes after the announced length that did not make
 * a whole second message, and counted a flag byte of 2 or more as 0. The
 * gRPC spec (PROTOCOL-HTTP2.md) allows none of it: "If the Message-Encoding
 * header is omitted then the Compressed-Flag must be 0", and a message is
 * exactly its announced length. This check runs on the bytes as they
 * arrive and names the first thing wrong; the server (grpc-server.ts) then
 * answers the call with INTERNAL, the status gRPC's own implementations
 * give a peer that breaks framing (grpc-go: "compressed flag set with
 * identity or empty encoding"), and never runs the handler.
 */

/** One request stream's framing, fed its DATA bytes in order. */
export class RequestFraming {
  private readonly prefix = Buffer.alloc(5);
  private prefixLen = 0;
  /** Body bytes of the current message still to come. */
  private remaining = 0;
  private messages = 0;

  /** `encoding`: the request's grpc-encoding header, if it had one. */
  constructor(private readonly encoding: string | undefined) {}

  /** Take the next DATA bytes; returns what is wrong with them, if anything. */
  push(data: Buffer): string | undefined {
    let i = 0;
    while (i < data.length) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, data.length - i);
        this.remaining -= n;
        i += n;
        continue;
      }
      if (this.prefixLen === 0 && this.messages > 0) {
        return "the request has bytes past the end of its message (its length prefix is shorter than what was sent, or a unary call sent a second message)";
      }
      const n = Math.min(5 - this.prefixLen, data.length - i);
      data.copy(this.prefix, this.prefixLen, i, i + n);
      this.prefixLen += n;
      i += n;
      if (this.prefixLen < 5) break;
      const problem = this.checkFlag(this.prefix[0]!);
      if (problem) return problem;
      this.prefixLen = 0;
      this.remaining = this.prefix.readUInt32BE(1);
      this.messages++;
    }
    return undefined;
  }

  /** The stream ended: was it exactly one whole message? */
  end(): string | undefined {
    if (this.prefixLen > 0) return `the request ended inside a message's 5-byte length prefix (${this.prefixLen} bytes of it were sent)`;
    if (this.remaining > 0) {
      return `the request ended ${this.remaining} bytes short of the length its message's prefix announced (${this.prefix.readUInt32BE(1)} bytes)`;
    }
    if (this.messages === 0) return "the request ended without a message (a unary call sends exactly one)";
    return undefined;
  }

  private checkFlag(flag: number): string | undefined {
    if (flag > 1) return `a message's compressed flag is ${flag}; gRPC allows only 0 and 1`;
    if (flag === 1 && (this.encoding === undefined || this.encoding === "identity")) {
      return `a message's compressed flag is set, but the request ${this.encoding === undefined ? "has no grpc-encoding header" : "says grpc-encoding: identity"}`;
    }
    return undefined;
  }
}
