// `--host ::1`: wherever the playground shows an address with its port, an
// IPv6 address goes in brackets, as in a URL — "[::1]:7000", never
// "::1:7000", which reads as the address ::1:7000 with no port at all. And
// every transport works there, UDP too (its socket takes the address's family).
import assert from "node:assert/strict";
import * as net from "node:net";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { codecByName, protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { NO_FAULTS } from "../../src/rpc-demo/faults/faults";
import { playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Trace } from "../../src/rpc-demo/trace";
import { callProcedure, type ServerTransport, type TransportName } from "../../src/rpc-demo/transports/transport";
import { UdpClient, UdpServer, type HostLookup } from "../../src/rpc-demo/transports/udp";
import { call, serve } from "../../src/rpc-demo/walkthrough/two-ends";
import { listenError } from "../../src/server/host-flag";

/** Whether this machine has IPv6 loopback to listen on. */
function ipv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(0, "::1", () => s.close(() => resolve(true)));
  });
}

/** Lines the 100-column wrapping split, joined again. */
const unwrapped = (text: string) => text.replace(/\n {2,}(?=\S)/g, " ");

describe("rpc serve and call with --host ::1", () => {
  let server: ServerTransport | undefined;
  before(async function () {
    if (!(await ipv6Loopback())) this.skip(); // no IPv6 here: nothing to show
  });
  afterEach(async () => server?.close());

  const ends = (transport: TransportName) => ({ transport, host: "::1", faults: NO_FAULTS, plain: true });
  for (const transport of ["tcp", "udp", "http2"] as TransportName[]) {
    it(`over ${transport}: serve announces [::1]:PORT, and call says whom it called as [::1]:PORT`, async () => {
      const served: string[] = [];
      server = await serve({ ...ends(transport), port: 0, duplicateCache: true, quiet: false, write: (t) => served.push(t) });
      const port = server.port;
      assert.match(served[0]!, new RegExp(`^Playground serving over ${transport} on \\[::1\\]:${port} `));
      const told: string[] = [];
      const { ok } = await call({ ...ends(transport), port, codec: codecByName("protobuf"), method: "add", request: undefined, timeoutMs: 2000, write: (t) => told.push(t) });
      const text = unwrapped(told.join("\n"));
      assert.ok(ok, text);
      assert.match(text, new RegExp(`^Playground\\.Add to \\[::1\\]:${port} over ${transport}`));
      if (transport === "http2") assert.match(text, new RegExp(`:authority: \\[::1\\]:${port} `), "the HTTP/2 authority, as a URI writes it (RFC 3986)");
      if (transport === "udp") {
        assert.match(text, new RegExp(`send the datagram to \\[::1\\]:${port},`));
        assert.match(unwrapped(served.join("\n")), /receive a \d+-byte datagram from \[::1\]:\d+/, "the server's narration names the caller");
      }
      for (const said of [text, unwrapped(served.join("\n"))]) assert.doesNotMatch(said, /(^|[^[])::1:\d/, "no unbracketed ::1:PORT anywhere");
    });
  }

  it("UDP to a host name that resolves only to IPv6: looked up once, in either family as for TCP, a udp6 socket, [::1]:PORT", async () => {
    // No name on this machine need resolve to ::1 alone (/etc/hosts is not ours to change): the resolver is given,
    // as node:net and node:dgram take one, and answers as DNS would for a name with only an AAAA record.
    const asked: string[] = [];
    const lookup: HostLookup = async (host) => {
      asked.push(host);
      if (host !== "v6only.test") throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
      return { address: "::1", family: 6 };
    };
    server = await UdpServer.listen(playgroundDispatcher(), { host: "v6only.test", lookup });
    const client = await UdpClient.connect({ host: "v6only.test", port: server.port, lookup });
    const said: string[] = [];
    try {
      for (const b of [1n, 2n]) {
        const reply = await callProcedure(client, protobufCodec, Playground.add, { a: 40n, b }, { timeoutMs: 2000, trace: new Trace((s) => said.push(s.title)) });
        assert.equal(reply.sum, 40n + b);
      }
    } finally {
      await client.close();
    }
    assert.deepEqual(asked, ["v6only.test", "v6only.test"], "once by the server, once by the client: not per datagram");
    assert.ok(said.some((t) => new RegExp(`^send the datagram to \\[::1\\]:${server!.port},`).test(t)), said.join("\n"));
  });

  it("a listener that cannot start names [::1]:PORT", () => {
    const err = Object.assign(new Error("bind EINVAL ::1"), { code: "EINVAL" });
    assert.equal(listenError(err, "::1", 7000).message, "cannot listen on [::1]:7000: bind EINVAL ::1");
    assert.equal(listenError(err, "127.0.0.1", 7000).message, "cannot listen on 127.0.0.1:7000: bind EINVAL ::1");
  });
});
