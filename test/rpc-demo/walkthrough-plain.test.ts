// `csi-lab rpc walkthrough --plain` narrates one call, step by step, in
// plain text: call ID, annotated bytes, frames, dispatch, reply, timings.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { codecByName } from "../../src/rpc-demo/codecs/codec";
import { PROTO_DIR } from "../../src/rpc-demo/codecs/schema";
import { parseFaults } from "../../src/rpc-demo/faults/faults";
import type { TransportName } from "../../src/rpc-demo/transports/transport";
import { walkthrough } from "../../src/rpc-demo/walkthrough/walkthrough";

const BIN = path.join(PROTO_DIR, "..", "bin", "csi-lab.js");

/** Each pattern must appear, in this order. */
function assertInOrder(text: string, patterns: RegExp[]): void {
  let from = 0;
  for (const p of patterns) {
    const m = p.exec(text.slice(from));
    assert.ok(m, `expected ${p} after offset ${from} in:\n${text}`);
    from += m.index + m[0].length;
  }
}

async function run(transport: TransportName, codec: string, fault?: string, method: "add" | "increment" = "add"): Promise<{ text: string; ok: boolean }> {
  const out: string[] = [];
  const { ok } = await walkthrough({
    transport,
    codec: codecByName(codec),
    faults: parseFaults(fault),
    method,
    request: undefined,
    timeoutMs: 2000,
    plain: true,
    write: (t) => out.push(t),
  });
  return { text: out.join("\n"), ok };
}

describe("rpc walkthrough --plain", () => {
  it("the command prints the whole story of one TCP call as plain text", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, "rpc", "walkthrough", "--plain"]);
    assert.doesNotMatch(stdout, /\x1b\[/, "no colour codes");
    assertInOrder(stdout, [
      /transport tcp · codec protobuf/,
      /client +call-id .*look up the call ID of Add/,
      /numeric +program 0x2000c51a version 1 procedure 1/,
      /client +codec .*encode the arguments \(protobuf, 4 bytes\)/,
      /0001  04 +sint64 2 \(zigzag 4\)/,
      /record mark: top bit 1 = last fragment, length 26/,
      /server +dispatch .*look up the call ID in the dispatch table/,
      /server +handler .*run add\(\)/,
      /client +framing .*match the reply to its call by xid/,
      /Result: \{"sum":"42"\}/,
      /Time per layer/,
      /codec +\d+\.\d+ ms/,
      /total +\d+\.\d+ ms/,
    ]);
  });

  const frames: Record<TransportName, RegExp> = {
    tcp: /record mark/,
    udp: /one \d+-byte datagram/,
    http2: /:path: \/csilab\.rpcdemo\.v1\.Playground\/Add[\s\S]*content-type: application\/grpc\+json[\s\S]*te: trailers[\s\S]*message length 18 \(big-endian\)[\s\S]*grpc-status: 0/,
  };
  for (const transport of ["tcp", "udp", "http2"] as TransportName[]) {
    it(`narrates a JSON-encoded call over ${transport}`, async () => {
      const { text, ok } = await run(transport, "json");
      assert.ok(ok);
      assert.match(text, /18 bytes of UTF-8 text:\n\s*\{"a":"2","b":"40"\}/);
      assert.match(text, frames[transport]);
      assert.match(text, /Result: \{"sum":"42"\}/);
    });
  }

  for (const [transport, sent] of [["tcp", "numbers"], ["udp", "numbers"], ["http2", "name"]] as const) {
    it(`over ${transport}, says which call ID goes on the wire (the ${sent}), and the server does not claim to match a reply`, async () => {
      const { text, ok } = await run(transport, "protobuf");
      assert.ok(ok, text);
      const wire = /^ {6}\(over (TCP and UDP|HTTP\/2) only the (numbers|name) (?:is|are) sent/m.exec(text);
      assert.ok(wire, `the call-ID step says which ID is sent:\n${text}`);
      assert.deepEqual([wire[1], wire[2]], [transport === "http2" ? "HTTP/2" : "TCP and UDP", sent]);
      if (transport === "http2") assert.match(text, /:path: \/csilab\.rpcdemo\.v1\.Playground\/Add/);
      else assert.match(text, /program 0x2000c51a\n.*version 1\n.*procedure 1\n/);
      // The server reads a call: there is no reply yet for it to match; it copies the xid into the one it will send.
      assert.doesNotMatch(text, /matches the reply to this call/);
      if (transport !== "http2") assert.match(text, /xid {8}0x[0-9a-f]{8} {2}\(the reply repeats it: the caller matches them by it\)/);
    });
  }

  it("with --fault drop over UDP, tells of the loss, the retransmission and the cached reply", async () => {
    const { text, ok } = await run("udp", "protobuf", "drop", "increment");
    assert.ok(ok);
    assertInOrder(text, [
      /✗ the request is lost on the way \(injected drop\)/,
      /send the same datagram again \(attempt 2, same xid\)/,
      /run increment\(\)/,
      /✗ the reply is lost on the way/,
      /resend the cached reply, do not run it again/,
      /The server ran Increment 1 time for this one call\./,
    ]);
  });
});
