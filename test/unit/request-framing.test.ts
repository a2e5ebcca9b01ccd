// gRPC message framing on a request stream, and following HTTP/2 frames across
// arbitrary write boundaries: the verdict and the bytes passed on must not depend
// on where the transport happened to cut the stream.
import assert from "node:assert/strict";
import fc from "fast-check";
import { RequestFraming } from "../../src/server/request-framing";

function message(body: Buffer, flag = 0, length = body.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(length, 1);
  return Buffer.concat([head, body]);
}

/** Cut `bytes` at the given points (sorted, deduplicated, inside the buffer). */
function cut(bytes: Buffer, points: number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of [...at, bytes.length]) {
    parts.push(bytes.subarray(prev, p));
    prev = p;
  }
  return parts;
}

function verdict(encoding: string | undefined, parts: Buffer[]): string | undefined {
  const f = new RequestFraming(encoding);
  for (const p of parts) {
    const problem = f.push(p);
    if (problem) return problem;
  }
  return f.end();
}

describe("RequestFraming", () => {
  const body = Buffer.from("a protobuf message, say");
  const cases: [string, string | undefined, Buffer, RegExp | undefined][] = [
    ["one whole message", undefined, message(body), undefined],
    ["an empty message", undefined, message(Buffer.alloc(0)), undefined],
    ["a compressed message with grpc-encoding gzip", "gzip", message(body, 1), undefined],
    ["the compressed flag without grpc-encoding", undefined, message(body, 1), /no grpc-encoding/],
    ["the compressed flag with identity", "identity", message(body, 1), /identity/],
    ["a flag of 2", undefined, message(body, 2), /only 0 and 1/],
    ["a length shorter than the body", undefined, message(body, 0, 3), /past the end/],
    ["a length longer than the body", undefined, message(body, 0, 99), /short of the length/],
    ["two messages", undefined, Buffer.concat([message(body), message(body)]), /past the end/],
    ["a cut prefix", undefined, message(body).subarray(0, 4), /inside a message's 5-byte/],
    ["nothing", undefined, Buffer.alloc(0), /without a message/],
  ];
  for (const [what, encoding, bytes, expected] of cases) {
    it(`${what}: ${expected ? "refused" : "accepted"}, however the bytes are cut`, () => {
      fc.assert(
        fc.property(fc.array(fc.nat(), { maxLength: 6 }), (points) => {
          const problem = verdict(encoding, cut(bytes, points));
          if (expected) assert.match(problem ?? "", expected);
          else assert.equal(problem, undefined);
        }),
      );
    });
  }
});
