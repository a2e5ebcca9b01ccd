// A datagram the kernel will not send is one call's loss: the end that sent it says so, the call
// it belonged to is told (when the caller is the one that cannot send), and the server keeps
// serving. Node tells a failed send only to the send's callback (its documentation says an 'error'
// event otherwise; Node 20 drops it): without one, the reply vanished unnarrated and the caller
// waited out its deadline, and a caller whose own datagrams were refused waited just the same.
//
// Both faults are real, made by the kernel on loopback:
// - The server. A server on "::" is dual-stack: its IPv6 socket also takes IPv4 datagrams, whose
//   senders it sees as ::ffff:127.0.0.1. Its size check allows a reply IPv6's 65,527 bytes, but a
//   reply to an IPv4 peer travels as IPv4, where at most 65,507 fit: one of 65,517 bytes is refused
//   (EMSGSIZE). proto3 JSON writes 64-bit numbers quoted, so an Echo of bare numbers comes back
//   nearly twice its size: a call that fits makes a reply that does not.
// - The client. A call to 255.255.255.255, the broadcast address, is refused at every send (EACCES:
//   the socket did not ask to broadcast): the first attempt and each retransmission.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as dgram from "node:dgram";
import { once } from "node:events";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { codecByName, protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { Trace } from "../../src/rpc-demo/trace";
import { encodeCall, encodeReply, AcceptStat } from "../../src/rpc-demo/transports/rpc-header";
import { callProcedure } from "../../src/rpc-demo/transports/transport";
import { MAX_DATAGRAM, UdpClient } from "../../src/rpc-demo/transports/udp";
import { BIN, until } from "./started-by-shell";

const json = codecByName("json");

/** A JSON Echo call whose reply datagram is `replySize` bytes (the text takes up what the quoted numbers leave). */
function echoWithReplyOf(xid: number, replySize: number): Buffer {
  const bodyOf = (text: string) => Buffer.from(`{"deltas":[${Array(15_000).fill(1).join(",")}],"text":"${text}"}`);
  const replyOf = (text: string) => {
    const echoed = Buffer.from(json.encode(Playground.echo.response, json.decode(Playground.echo.request, bodyOf(text))));
    return encodeReply({ xid, stat: AcceptStat.SUCCESS, body: echoed }).length;
  };
  const text = "x".repeat(replySize - replyOf("x") + 1); // (an empty text is left out of the reply altogether)
  assert.equal(replyOf(text), replySize);
  return encodeCall({ xid, codecId: json.id, number: Playground.echo.number, timeoutMs: 10_000, body: bodyOf(text) });
}

describe("UDP: a datagram the kernel refuses fails its own call, and both ends keep going", () => {
  it("`rpc serve --host ::` whose replies to an IPv4 caller are refused twice (EMSGSIZE) says so each time, stays up and answers the next call", async function () {
    // The real command in a process of its own, as a class runs it: whatever goes wrong there, the test sees whether it stays up.
    const serve = spawn(process.execPath, [BIN, "rpc", "serve", "--transport", "udp", "--host", "::", "--port", "0", "--plain"]);
    let out = "";
    serve.stdout.on("data", (b: Buffer) => (out += b.toString()));
    serve.stderr.on("data", (b: Buffer) => (out += b.toString()));
    const ended = once(serve, "exit");
    const caller = dgram.createSocket("udp4");
    let client: UdpClient | undefined;
    try {
      const port = await until("serve to announce its port, or to end", () => (serve.exitCode !== null ? -1 : /on \[::\]:(\d+) /.exec(out)?.[1]));
      if (port === -1) this.skip(); // no IPv6 here: no dual-stack socket to show
      await new Promise<void>((resolve) => caller.bind(0, "127.0.0.1", resolve));
      for (const xid of [1, 2]) {
        const call = echoWithReplyOf(xid, 65_517);
        assert.ok(call.length <= MAX_DATAGRAM.udp4 && 65_517 > MAX_DATAGRAM.udp4 && 65_517 <= MAX_DATAGRAM.udp6);
        caller.send(call, Number(port), "127.0.0.1");
      }
      // serve wraps its narration at 100 columns: a step's title may go on on the next line.
      const refused = () => out.replace(/\n +/g, " ").match(/✗ the reply could not be sent: send EMSGSIZE ::ffff:127\.0\.0\.1:\d+/g) ?? [];
      await until("two refused replies, or serve to end", () => serve.exitCode !== null || refused().length === 2);
      assert.equal(serve.exitCode, null, `serve ended:\n${out}`);
      client = await UdpClient.connect({ host: "127.0.0.1", port: Number(port) });
      assert.deepEqual(await callProcedure(client, protobufCodec, Playground.add, { a: 2n, b: 40n }, { timeoutMs: 10_000 }), { sum: 42n });
      assert.equal(serve.exitCode, null, `serve ended:\n${out}`);
    } finally {
      caller.close();
      await client?.close();
      if (serve.exitCode === null) serve.kill();
      await ended;
    }
  });

  it("a call to the broadcast address is refused at its first send (EACCES): it fails at once with UNAVAILABLE saying why, not at its deadline", async () => {
    const client = await UdpClient.connect({ host: "255.255.255.255", port: 9, retransmitMs: 1 });
    const said: string[] = [];
    try {
      await assert.rejects(
        callProcedure(client, protobufCodec, Playground.add, { a: 1n, b: 1n }, { timeoutMs: 10_000, trace: new Trace((s) => said.push(s.title)) }),
        (err: unknown) => {
          assert.ok(err instanceof RpcError, String(err));
          assert.equal(err.code, Code.UNAVAILABLE);
          assert.equal(err.message, "the call could not be sent: send EACCES 255.255.255.255:9");
          return true;
        },
      );
      // Resending every millisecond: resends already out when the refusal came back are refused too, and add nothing to the story.
      assert.deepEqual(said.filter((t) => /could not be sent/.test(t)), ["✗ the call could not be sent: send EACCES 255.255.255.255:9"], said.join("\n"));
    } finally {
      await client.close();
    }
  });
});
