/**
 * The playground's benchmark, in one run, side by side:
 *   1. codecs: encode/decode time of our hand codec, ts-proto and JSON;
 *   2. round trips: p50/p99 latency (one call at a time) and throughput
 *      (32 calls in flight) of Add over our TCP, UDP and HTTP/2 transports
 *      and over stock grpc-js (client and server), all on loopback with the
 *      servers in a second process.
 *
 *   npm run bench:rpc        (after a build; takes about a minute)
 */
import { spawn } from "node:child_process";
import * as os from "node:os";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { credentials } from "@grpc/grpc-js";
import { PlaygroundClient } from "../../src/gen/rpc-demo";
import { Playground } from "../../src/rpc-demo/call-ids/playground";
import { protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { connectClient } from "../../src/rpc-demo/transports";
import { callProcedure, type TransportName } from "../../src/rpc-demo/transports/transport";
import { codecFigures } from "./codec-bench";
import type { BenchPorts } from "./servers";

type Call = () => Promise<unknown>;

interface RoundTrip {
  name: string;
  p50us: number;
  p99us: number;
  callsPerSec: number;
}

const LATENCY_CALLS = 5000;
const THROUGHPUT_CALLS = 20_000;
const IN_FLIGHT = 32;

async function measure(name: string, call: Call): Promise<RoundTrip> {
  for (let i = 0; i < 2000; i++) await call(); // warm up
  const samples: number[] = [];
  for (let i = 0; i < LATENCY_CALLS; i++) {
    const t0 = process.hrtime.bigint();
    await call();
    samples.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  samples.sort((a, b) => a - b);
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next++ < THROUGHPUT_CALLS) await call();
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    name,
    p50us: samples[Math.floor(samples.length * 0.5)]!,
    p99us: samples[Math.floor(samples.length * 0.99)]!,
    callsPerSec: THROUGHPUT_CALLS / secs,
  };
}

async function startServers(): Promise<{ ports: BenchPorts; stop(): void }> {
  const child = spawn(process.execPath, [path.join(__dirname, "servers.js")], { stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`bench servers exited with ${code}`)));
  });
  return { ports: JSON.parse(line) as BenchPorts, stop: () => child.stdin!.end() };
}

async function roundTrips(ports: BenchPorts): Promise<RoundTrip[]> {
  const out: RoundTrip[] = [];
  const req = { a: 2, b: 40 };
  for (const t of ["tcp", "udp", "http2"] as TransportName[]) {
    const client = await connectClient(t, { port: ports[t], retransmitMs: 1000 });
    out.push(await measure(`ours: ${t}`, () => callProcedure(client, protobufCodec, Playground.add, req, { timeoutMs: 10_000 })));
    await client.close();
  }
  const grpcClient = new PlaygroundClient(`127.0.0.1:${ports.grpcJs}`, credentials.createInsecure());
  const grpcCall = () => new Promise((resolve, reject) => grpcClient.add(req, (err, res) => (err ? reject(err) : resolve(res))));
  out.push(await measure("grpc-js unary (client and server)", grpcCall));
  grpcClient.close();
  return out;
}

const f1 = (n: number) => n.toFixed(1);
const f0 = (n: number) => Math.round(n).toLocaleString("en-US");

async function main(): Promise<void> {
  const cpu = os.cpus();
  process.stdout.write(`Machine: ${cpu.length} × ${cpu[0]?.model ?? "?"}, Node ${process.version}, ${os.platform()} ${os.release()}\n\n`);

  process.stdout.write("## Codecs (ns per message, median of 15 interleaved rounds)\n\n");
  process.stdout.write("| message | bytes (proto / JSON) | hand encode | ts-proto encode | JSON encode | hand decode | ts-proto decode | JSON decode | hand ÷ ts-proto (enc / dec) |\n");
  process.stdout.write("|---|---|---|---|---|---|---|---|---|\n");
  for (const f of codecFigures()) {
    const h = f.ns["protobuf"]!;
    const t = f.ns["ts-proto"]!;
    const j = f.ns["json"]!;
    process.stdout.write(
      `| ${f.message} | ${f.bytes["protobuf"]} / ${f.bytes["json"]} | ${f0(h.encode)} | ${f0(t.encode)} | ${f0(j.encode)} | ${f0(h.decode)} | ${f0(t.decode)} | ${f0(j.decode)} | ${(h.encode / t.encode).toFixed(2)} / ${(h.decode / t.decode).toFixed(2)} |\n`,
    );
  }

  const servers = await startServers();
  try {
    process.stdout.write(`\n## Round trips: Add, loopback, servers in a second process (${LATENCY_CALLS} sequential calls; ${THROUGHPUT_CALLS} with ${IN_FLIGHT} in flight)\n\n`);
    process.stdout.write("| transport | p50 µs | p99 µs | calls/s |\n|---|---|---|---|\n");
    const rows = await roundTrips(servers.ports);
    for (const r of rows) process.stdout.write(`| ${r.name} | ${f1(r.p50us)} | ${f1(r.p99us)} | ${f0(r.callsPerSec)} |\n`);
    const grpc = rows.find((r) => r.name.startsWith("grpc-js"))!;
    const tcp = rows.find((r) => r.name === "ours: tcp")!;
    const h2 = rows.find((r) => r.name === "ours: http2")!;
    process.stdout.write(`\nTCP p50 is ${(grpc.p50us / tcp.p50us).toFixed(1)}× lower than grpc-js (target ≥ 5×).\n`);
    process.stdout.write(`Our HTTP/2 p50 is ${(grpc.p50us / h2.p50us).toFixed(2)}× grpc-js's, throughput ${(h2.callsPerSec / grpc.callsPerSec).toFixed(2)}× (target ≥ 1).\n`);
  } finally {
    servers.stop();
  }
}

if (require.main === module) void main();
