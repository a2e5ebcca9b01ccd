// The HTTP/2 client's wire tap (the walkthrough's, or any Http2Client with `wire`) reads every byte a
// server sends before node:http2 does, inside the socket's 'data' listener: there, a throw has nobody
// to catch it and ends the process. A broken or hostile server must not get that far. What the tap
// cannot read is told as a note on the step that read it (a header block HPACK cannot decode, a frame
// too short for its type, padding longer than its frame), its bytes are named as unread, and the call
// fails cleanly: node:http2 answers the fault with GOAWAY, and the server here, as a real one would,
// then closes the connection.
//
// The server is a real one on a real socket, speaking raw HTTP/2 frames (src/server/http2/frames.ts):
// it waits for the client's request HEADERS, then sends its SETTINGS and the broken frame.
import assert from "node:assert/strict";
import * as net from "node:net";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { Trace, type TraceStep } from "../../src/rpc-demo/trace";
import { Http2Client } from "../../src/rpc-demo/transports/http2-client";
import { callProcedure } from "../../src/rpc-demo/transports/transport";
import { FLAG, frame, FrameReader, TYPE } from "../../src/server/http2/frames";

const NONE = Buffer.alloc(0);

/** A server that answers the first request with `answer`, and closes the connection once the client sends GOAWAY. */
async function rawServer(answer: Buffer): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    const reader = new FrameReader({
      frame: (type) => {
        if (type === TYPE.GOAWAY) socket.end();
      },
      headers: (h) => {
        if (h.streamId === 1) socket.write(Buffer.concat([frame(TYPE.SETTINGS, 0, 0, NONE), frame(TYPE.SETTINGS, FLAG.ACK, 0, NONE), answer]));
      },
    });
    socket.on("data", (chunk: Buffer) => {
      if (reader.push(chunk)) socket.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The client's steps that read bytes off the connection. */
const reads = (steps: readonly TraceStep[]) => steps.filter((s) => s.side === "client" && /^read \d+ bytes from the TCP connection/.test(s.title));

const CASES = [
  {
    what: "a header block that does not decode (index 0, which HPACK reserves)",
    answer: frame(TYPE.HEADERS, FLAG.END_HEADERS, 1, Buffer.from([0x88, 0x80])),
    note: "could not decode this header block: Zero indexed field",
    label: "HPACK indexed field 8 (static table): :status: 200", // what decoded before the fault is still named
    goaway: "error code 9 COMPRESSION_ERROR",
  },
  {
    what: "a WINDOW_UPDATE of 2 bytes",
    answer: frame(TYPE.WINDOW_UPDATE, 0, 0, Buffer.from([0, 1])),
    note: "could not read this WINDOW_UPDATE frame: its payload is 2 bytes, a WINDOW_UPDATE frame's is 4",
    label: "2 bytes of payload, not read: its payload is 2 bytes, a WINDOW_UPDATE frame's is 4",
    goaway: "error code 6 FRAME_SIZE_ERROR",
  },
  {
    what: "a RST_STREAM of 2 bytes",
    answer: frame(TYPE.RST_STREAM, 0, 1, Buffer.from([0, 1])),
    note: "could not read this RST_STREAM frame: its payload is 2 bytes, a RST_STREAM frame's is 4",
    label: "2 bytes of payload, not read: its payload is 2 bytes, a RST_STREAM frame's is 4",
    goaway: "error code 6 FRAME_SIZE_ERROR",
  },
  {
    what: "a GOAWAY of 5 bytes",
    answer: frame(TYPE.GOAWAY, 0, 0, Buffer.from([0, 0, 0, 0, 0])),
    note: "could not read this GOAWAY frame: its payload is 5 bytes, a GOAWAY frame's is at least 8",
    label: "5 bytes of payload, not read: its payload is 5 bytes, a GOAWAY frame's is at least 8",
    goaway: "error code 6 FRAME_SIZE_ERROR",
  },
  {
    what: "a HEADERS frame whose padding is longer than itself",
    answer: frame(TYPE.HEADERS, FLAG.END_HEADERS | FLAG.PADDED, 1, Buffer.from([0x10, 0x88])),
    note: "could not read this HEADERS frame: its padding and priority (17 bytes) are longer than its 2-byte payload",
    label: "2 bytes of payload, not read: its padding and priority (17 bytes) are longer than its 2-byte payload",
    goaway: "error code 1 PROTOCOL_ERROR",
  },
];

describe("HTTP/2 wire tap: what a server sends that cannot be read is told, and the call fails cleanly", () => {
  for (const c of CASES) {
    it(`${c.what}: a note says so, its bytes are named unread, the call fails with UNAVAILABLE`, async () => {
      const server = await rawServer(c.answer);
      const client = await Http2Client.connect({ port: server.port, wire: true });
      const trace = new Trace();
      try {
        await assert.rejects(callProcedure(client, protobufCodec, Playground.add, { a: 1n, b: 2n }, { timeoutMs: 10_000, trace }), (err: unknown) => {
          assert.ok(err instanceof RpcError, String(err));
          assert.equal(err.code, Code.UNAVAILABLE, err.message);
          return true;
        });
        const read = reads(trace.steps).find((s) => s.notes.includes(c.note));
        assert.ok(read, `no read step noted "${c.note}":\n${reads(trace.steps).map((s) => `${s.title} ${JSON.stringify(s.notes)}`).join("\n")}`);
        assert.ok(read.segments.some((s) => s.label === c.label), read.segments.map((s) => s.label).join("\n"));
        // Every byte named once, the unread ones too: the dump stays whole.
        for (const s of trace.steps.filter((s) => s.bytes && s.segments.length)) {
          assert.equal(
            s.segments.reduce((n, g) => n + g.length, 0),
            s.bytes!.data.length,
            s.title,
          );
        }
        // node:http2 refused the same bytes: the client's own GOAWAY, on the wire, says why.
        const wrote = trace.steps.filter((s) => s.side === "client" && /^write \d+ bytes to the TCP connection: GOAWAY/.test(s.title));
        assert.ok(
          wrote.some((s) => s.segments.some((g) => g.label === c.goaway)),
          wrote.map((s) => s.segments.map((g) => g.label).join("; ")).join("\n"),
        );
      } finally {
        await client.close();
        await server.close();
      }
    });
  }
});
