// The largest UDP datagram depends on the socket's family: 65,507 bytes of
// payload over IPv4 (65,535 − 20 IPv4 header − 8 UDP header), 65,527 over
// IPv6 (65,535 − 8: IPv6's payload length leaves its own header out). A
// call at the limit goes and is answered; one byte more is refused before
// it is sent, with an error that names the limit — never sent to be lost.
// A reply past the limit becomes a RESOURCE_EXHAUSTED answer the caller
// can read, not a datagram that never leaves. The limit is the family the
// datagram travels in: a server on "::" also answers IPv4 callers (it sees
// them as ::ffff:a.b.c.d), over IPv4, and a client given an IPv4-mapped
// address calls over IPv4. Real sockets throughout, and the limits
// themselves checked against this machine's kernel first.
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import * as net from "node:net";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { codecByName, protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { Trace } from "../../src/rpc-demo/trace";
import { AcceptStat, CALL_HEADER_SIZE, decodeReply, encodeCall, encodeReply } from "../../src/rpc-demo/transports/rpc-header";
import { callProcedure } from "../../src/rpc-demo/transports/transport";
import { datagramLimit, MAX_DATAGRAM, UdpClient, UdpServer } from "../../src/rpc-demo/transports/udp";

function ipv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(0, "::1", () => s.close(() => resolve(true)));
  });
}

/** Send `size` bytes from one socket of the family to another: what the kernel says, and what arrives. */
async function kernelSends(family: "udp4" | "udp6", host: string, size: number): Promise<string> {
  const rx = dgram.createSocket(family);
  const tx = dgram.createSocket(family);
  try {
    await new Promise<void>((resolve) => rx.bind(0, host, resolve));
    const arrived = new Promise<number>((resolve) => rx.once("message", (m) => resolve(m.length)));
    const err = await new Promise<NodeJS.ErrnoException | null>((resolve) => tx.send(Buffer.alloc(size), rx.address().port, host, resolve));
    return err ? String(err.code) : `arrived ${await arrived}`;
  } finally {
    rx.close();
    tx.close();
  }
}

/** A reply datagram to a raw call, waiting at most `ms` for it. */
async function rawCall(family: "udp4" | "udp6", host: string, port: number, datagram: Buffer, ms: number): Promise<Buffer | undefined> {
  const s = dgram.createSocket(family);
  try {
    await new Promise<void>((resolve) => s.bind(0, resolve));
    const reply = new Promise<Buffer | undefined>((resolve) => {
      s.once("message", resolve);
      setTimeout(() => resolve(undefined), ms).unref();
    });
    s.send(datagram, port, host);
    return await reply;
  } finally {
    s.close();
  }
}

const json = codecByName("json");

/**
 * A JSON Echo call whose reply datagram is `replySize` bytes: proto3 JSON takes 64-bit numbers bare and writes them
 * quoted, so the reply is nearly twice the call; the text takes up what the quoted numbers leave.
 */
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

const FAMILIES = [
  { family: "udp4", host: "127.0.0.1", limit: 65_507, words: /over IPv4 carries at most 65,507 bytes/ },
  { family: "udp6", host: "::1", limit: 65_527, words: /over IPv6 carries at most 65,527 bytes/ },
] as const;

describe("UDP: the largest datagram follows the socket's family", () => {
  for (const f of FAMILIES) {
    describe(`over ${f.family} (${f.host})`, () => {
      let server: UdpServer;
      let client: UdpClient;
      let serverSaw: string[];
      before(async function () {
        if (f.family === "udp6" && !(await ipv6Loopback())) this.skip(); // no IPv6 here: nothing to show
        serverSaw = [];
        server = await UdpServer.listen(playgroundDispatcher(), { host: f.host, trace: new Trace((s) => serverSaw.push(s.title)) });
        client = await UdpClient.connect({ host: f.host, port: server.port });
      });
      after(async () => {
        await client?.close();
        await server?.close();
      });

      it(`this machine's kernel takes ${f.limit} bytes and refuses one more (EMSGSIZE)`, async () => {
        assert.equal(MAX_DATAGRAM[f.family], f.limit);
        assert.equal(await kernelSends(f.family, f.host, f.limit), `arrived ${f.limit}`);
        assert.equal(await kernelSends(f.family, f.host, f.limit + 1), "EMSGSIZE");
      });

      /** An Echo whose call datagram is `size` bytes: the text fills what the call header and the field's tag and length leave. */
      const echoOf = (size: number) => {
        const fieldOverhead = protobufCodec.encode(Playground.echo.request, { text: "x".repeat(60_000) } as never).length - 60_000;
        return { text: "x".repeat(size - CALL_HEADER_SIZE - fieldOverhead) };
      };

      it(`an Echo call of exactly ${f.limit} bytes goes, is answered, and its narration names the limit`, async () => {
        const said: { title: string; notes: readonly string[] }[] = [];
        const trace = new Trace((s) => said.push({ title: s.title, notes: s.notes }));
        const request = echoOf(f.limit);
        const reply = await callProcedure(client, protobufCodec, Playground.echo, request as never, { timeoutMs: 10_000, trace });
        assert.equal((reply as { text: string }).text, request.text);
        const framing = said.find((s) => /^put a call header in front of the arguments/.test(s.title))!;
        assert.match(framing.title, new RegExp(`one ${f.limit}-byte datagram`));
        assert.ok(framing.notes.some((n) => f.words.test(n)), framing.notes.join("\n"));
      });

      it(`one byte more is refused before it is sent: RESOURCE_EXHAUSTED, naming the ${f.family} limit`, async () => {
        const sentBefore = client.stats.sent;
        const said: string[] = [];
        await assert.rejects(
          callProcedure(client, protobufCodec, Playground.echo, echoOf(f.limit + 1) as never, { timeoutMs: 10_000, trace: new Trace((s) => said.push(s.title)) }),
          (err: unknown) => {
            assert.ok(err instanceof RpcError);
            assert.equal(err.code, Code.RESOURCE_EXHAUSTED);
            assert.match(err.message, new RegExp(`^a ${(f.limit + 1).toLocaleString("en-US")}-byte call does not fit in one UDP datagram`));
            assert.match(err.message, f.words);
            assert.match(err.message, /nothing was sent/);
            return true;
          },
        );
        assert.equal(client.stats.sent, sentBefore, "no datagram went out");
        assert.ok(!said.some((t) => /^send the datagram/.test(t)), said.join("\n"));
      });

      it("a reply past the limit is answered as RESOURCE_EXHAUSTED, naming the limit, instead of going nowhere", async () => {
        // proto3 JSON takes 64-bit numbers bare and writes them quoted: each "1," comes back as "\"1\",", twice the size.
        const body = Buffer.from(`{"deltas":[${Array(20_000).fill(1).join(",")}]}`);
        const datagram = encodeCall({ xid: 7, codecId: json.id, number: Playground.echo.number, timeoutMs: 10_000, body });
        assert.ok(datagram.length <= f.limit);
        const reply = await rawCall(f.family, f.host, server.port, datagram, 10_000);
        assert.ok(reply, "an answer came back");
        const r = decodeReply(reply);
        assert.equal(r.stat, AcceptStat.ERROR);
        assert.ok(r.stat === AcceptStat.ERROR && r.code === Code.RESOURCE_EXHAUSTED);
        assert.match(r.message, /^the reply of [\d,]+ bytes does not fit in one UDP datagram/);
        assert.match(r.message, f.words);
        assert.ok(serverSaw.some((t) => /^the reply would be a \d+-byte datagram, too big to send: answer RESOURCE_EXHAUSTED instead$/.test(t)), serverSaw.join("\n"));
      });
    });
  }
});

describe('UDP: a server on "::" sizes each reply by the family it travels in; a client, each call', () => {
  // 65,517 bytes: past IPv4's 65,507, within IPv6's 65,527.
  const between = 65_517;
  let server: UdpServer;
  let serverSaw: string[];
  before(async function () {
    if (!(await ipv6Loopback())) this.skip(); // no IPv6 here: no dual-stack socket to show
    serverSaw = [];
    server = await UdpServer.listen(playgroundDispatcher(), { host: "::", trace: new Trace((s) => serverSaw.push(s.title)) });
  });
  after(async () => {
    await server?.close();
  });

  it(`an IPv4 caller asking for a ${between.toLocaleString("en-US")}-byte reply is answered RESOURCE_EXHAUSTED, naming IPv4's limit`, async () => {
    const reply = await rawCall("udp4", "127.0.0.1", server.port, echoWithReplyOf(1, between), 10_000);
    assert.ok(reply, "an answer came back (the reply as it was would have been refused by the kernel: EMSGSIZE)");
    const r = decodeReply(reply);
    assert.ok(r.stat === AcceptStat.ERROR && r.code === Code.RESOURCE_EXHAUSTED, JSON.stringify(r));
    assert.equal(r.message, `the reply of 65,517 bytes does not fit in one UDP datagram: ${datagramLimit("udp4")}`);
    assert.ok(serverSaw.includes("the reply would be a 65517-byte datagram, too big to send: answer RESOURCE_EXHAUSTED instead"), serverSaw.join("\n"));
  });

  it("an IPv6 caller asking for the same reply gets it whole", async () => {
    const reply = await rawCall("udp6", "::1", server.port, echoWithReplyOf(2, between), 10_000);
    assert.ok(reply, "an answer came back");
    assert.equal(reply.length, between);
    assert.equal(decodeReply(reply).stat, AcceptStat.SUCCESS);
  });

  it("a client given an IPv4-mapped address (::ffff:127.0.0.1) refuses a call past IPv4's limit before sending it", async () => {
    const client = await UdpClient.connect({ host: "::ffff:127.0.0.1", port: server.port });
    try {
      // A JSON Echo whose call datagram is 65,517 bytes: past IPv4's limit, within IPv6's.
      const body = Buffer.from(`{"text":"${"x".repeat(between - CALL_HEADER_SIZE - '{"text":""}'.length)}"}`);
      await assert.rejects(client.roundTrip(Playground.echo, json, body, { timeoutMs: 10_000 }), (err: unknown) => {
        assert.ok(err instanceof RpcError, String(err));
        assert.equal(err.code, Code.RESOURCE_EXHAUSTED);
        assert.equal(err.message, `a 65,517-byte call does not fit in one UDP datagram: ${datagramLimit("udp4")}; nothing was sent`);
        return true;
      });
      assert.equal(client.stats.sent, 0, "no datagram went out");
    } finally {
      await client.close();
    }
  });
});
