// The largest UDP datagram depends on the socket's family: 65,507 bytes of
// payload over IPv4 (65,535 − 20 IPv4 header − 8 UDP header), 65,527 over
// IPv6 (65,535 − 8: IPv6's payload length leaves its own header out). A
// call at the limit goes and is answered; one byte more is refused before
// it is sent, with an error that names the limit — never sent to be lost.
// A reply past the limit becomes a RESOURCE_EXHAUSTED answer the caller
// can read, not a datagram that never leaves. Real sockets throughout, and
// the limits themselves checked against this machine's kernel first.
import assert from "node:assert/strict";
import * as dgram from "node:dgram";
import * as net from "node:net";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { codecByName, protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Code, RpcError } from "../../src/rpc-demo/rpc-error";
import { Trace } from "../../src/rpc-demo/trace";
import { AcceptStat, CALL_HEADER_SIZE, decodeReply, encodeCall } from "../../src/rpc-demo/transports/rpc-header";
import { callProcedure } from "../../src/rpc-demo/transports/transport";
import { MAX_DATAGRAM, UdpClient, UdpServer } from "../../src/rpc-demo/transports/udp";

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
        const json = codecByName("json");
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
