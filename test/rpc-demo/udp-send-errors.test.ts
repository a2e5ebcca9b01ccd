// A datagram the kernel will not send is one call's loss: the end that sent it says so, the call
// it belonged to is told (when the caller is the one that cannot send), and the server keeps
// serving. Node tells a failed send only to the send's callback (its documentation says an 'error'
// event otherwise; Node 20 drops it): without one, the reply vanished unnarrated and the caller
// waited out its deadline, and a caller whose own datagrams were refused waited just the same.
//
// Both faults are real, made by the kernel on loopback:
// - The server. Its reply's way back is missing: `rpc serve` runs in a network namespace of its own
//   (unshare --net, so nothing here touches this machine's routing) where a rule says 127.0.0.2 is
//   unreachable, ahead of the local table. A caller bound to 127.0.0.2 reaches the server, and every
//   reply to it is refused (ENETUNREACH); a caller on 127.0.0.1 is answered. (A reply too big for the
//   caller's family no longer reaches the kernel: it is answered RESOURCE_EXHAUSTED, see
//   udp-datagram-limit.test.ts. Nor do other ways fail a send here: an unconnected socket is told no
//   ICMP port unreachable, and libuv waits out a full send buffer, EAGAIN and ENOBUFS alike.)
// - The client. A call to 255.255.255.255, the broadcast address, is refused at every send (EACCES:
//   the socket did not ask to broadcast): the first attempt and each retransmission.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { promisify } from "node:util";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { Trace } from "../../src/rpc-demo/trace";
import { encodeCall } from "../../src/rpc-demo/transports/rpc-header";
import { callProcedure } from "../../src/rpc-demo/transports/transport";
import { UdpClient } from "../../src/rpc-demo/transports/udp";
import { skipUnlessInstalled } from "../sanity/programs";
import { BIN, until } from "./started-by-shell";

const run = promisify(execFile);

/** Loopback up, and no way to 127.0.0.2: a rule ahead of the local table (moved behind it) makes it unreachable. */
const NO_WAY_BACK = [
  "ip link set lo up",
  "ip rule del pref 0 lookup local",
  "ip rule add pref 100 lookup local",
  "ip rule add pref 10 to 127.0.0.2 unreachable",
].join(" && ");

/** Sends each hex datagram from 127.0.0.2 to the port, then ends. */
const SEND_FROM_127_0_0_2 = `
const s = require("node:dgram").createSocket("udp4");
const [port, ...datagrams] = process.argv.slice(1);
s.bind(0, "127.0.0.2", async () => {
  for (const hex of datagrams) await new Promise((done) => s.send(Buffer.from(hex, "hex"), Number(port), "127.0.0.1", done));
  s.close();
});`;

describe("UDP: a datagram the kernel refuses fails its own call, and both ends keep going", () => {
  it("`rpc serve` whose replies to a caller are refused twice (ENETUNREACH: no way back) says so each time, stays up and answers the next call", async function () {
    skipUnlessInstalled(this, "ip", "nsenter");
    // The real command in a process of its own, as a class runs it: whatever goes wrong there, the test sees whether it stays up.
    const serve = spawn("unshare", ["--net", "--", "sh", "-c", `${NO_WAY_BACK} && exec "$0" "$@"`, process.execPath, BIN, "rpc", "serve", "--transport", "udp", "--port", "0", "--plain"]);
    let out = "";
    serve.stdout.on("data", (b: Buffer) => (out += b.toString()));
    serve.stderr.on("data", (b: Buffer) => (out += b.toString()));
    serve.on("error", (err) => (out += String(err)));
    const ended = once(serve, "close");
    try {
      const port = await until("serve to announce its port, or to end", () => (serve.exitCode !== null ? -1 : /on 127\.0\.0\.1:(\d+) /.exec(out)?.[1]));
      if (port === -1) this.skip(); // no network namespace to be had here (not root?): nowhere to take a route away
      // Everything else in serve's namespace (unshare exec'd into sh, sh into node: serve.pid is serve's).
      const inside = (...argv: string[]) => run("nsenter", [`--net=/proc/${serve.pid}/ns/net`, "--", process.execPath, ...argv]);
      const calls = [1, 2].map((xid) => encodeCall({ xid, codecId: protobufCodec.id, number: Playground.add.number, timeoutMs: 10_000, body: Buffer.from([0x08, 0x02]) }));
      await inside("-e", SEND_FROM_127_0_0_2, port, ...calls.map((c) => c.toString("hex")));
      // serve wraps its narration at 100 columns: a step's title may go on on the next line.
      const refused = () => out.replace(/\n +/g, " ").match(/✗ the reply could not be sent: send ENETUNREACH 127\.0\.0\.2:\d+/g) ?? [];
      await until("two refused replies, or serve to end", () => serve.exitCode !== null || refused().length === 2);
      assert.equal(serve.exitCode, null, `serve ended:\n${out}`);
      const { stdout } = await inside(BIN, "rpc", "call", "--transport", "udp", "--port", port, "--method", "add", "--request", '{"a":2,"b":40}', "--plain");
      assert.match(stdout, /^Result: \{"sum":"42"\}$/m);
      assert.equal(serve.exitCode, null, `serve ended:\n${out}`);
    } finally {
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
