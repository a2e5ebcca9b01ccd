/**
 * The playground's benchmark, in one run, side by side:
 *   1. codecs: encode/decode time of our hand codec, ts-proto and JSON;
 *   2. round trips: p50/p99 latency (one call at a time) and throughput
 *      (32 calls in flight) of Add over our TCP, UDP and HTTP/2 transports
 *      and over stock grpc-js (client and server), all on loopback with the
 *      servers in a second process.
 *
 * Where the two processes run matters more than any code here: on this
 * kind of virtual machine, waking a process on another CPU costs tens of
 * microseconds, more than our whole TCP round trip. So with `taskset`
 * available the benchmark pins itself to CPU 0 and runs the round trips
 * twice, with the servers on CPU 1 (like two machines) and on CPU 0.
 *
 *   npm run bench:rpc        (builds first; takes about a minute and a half)
 */
import { spawn, spawnSync } from "node:child_process";
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

const ROUNDS = 10;
const LATENCY_CALLS = 500; // per round, one at a time
const THROUGHPUT_CALLS = 2000; // per round
const IN_FLIGHT = 32;

/**
 * The transports take turns, round after round: a burst of other load on
 * the machine, or a change in its power state, then hits all of them alike.
 * Latency percentiles pool every round's samples; throughput is the median
 * of the rounds.
 */
async function measureAll(clients: { name: string; call: Call }[]): Promise<RoundTrip[]> {
  for (const c of clients) for (let i = 0; i < 2000; i++) await c.call(); // warm up
  const samples = clients.map(() => [] as number[]);
  const rates = clients.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, c] of clients.entries()) {
      for (let i = 0; i < LATENCY_CALLS; i++) {
        const t0 = process.hrtime.bigint();
        await c.call();
        samples[k]!.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
      let next = 0;
      const t0 = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next++ < THROUGHPUT_CALLS) await c.call();
        }),
      );
      rates[k]!.push(THROUGHPUT_CALLS / (Number(process.hrtime.bigint() - t0) / 1e9));
    }
  }
  return clients.map((c, k) => {
    const s = samples[k]!.sort((a, b) => a - b);
    const rate = rates[k]!.sort((a, b) => a - b);
    return { name: c.name, p50us: s[Math.floor(s.length * 0.5)]!, p99us: s[Math.floor(s.length * 0.99)]!, callsPerSec: rate[rate.length >> 1]! };
  });
}

const PINNED = "RPC_BENCH_PINNED";
const canPin = os.cpus().length >= 2 && spawnSync("taskset", ["-c", "0", "true"]).status === 0;

async function startServers(cpu: number | undefined): Promise<{ ports: BenchPorts; stop(): void }> {
  const server = [process.execPath, path.join(__dirname, "servers.js")];
  const argv = cpu === undefined ? server : ["taskset", "-c", String(cpu), ...server];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`bench servers exited with ${code}`)));
  });
  return { ports: JSON.parse(line) as BenchPorts, stop: () => child.stdin!.end() };
}

async function roundTrips(ports: BenchPorts): Promise<RoundTrip[]> {
  const req = { a: 2n, b: 40n };
  const clients: { name: string; call: Call; close(): Promise<void> | void }[] = [];
  for (const t of ["tcp", "udp", "http2"] as TransportName[]) {
    const client = await connectClient(t, { port: ports[t], retransmitMs: 1000 });
    clients.push({ name: `ours: ${t}`, call: () => callProcedure(client, protobufCodec, Playground.add, req, { timeoutMs: 10_000 }), close: () => client.close() });
  }
  const grpcClient = new PlaygroundClient(`127.0.0.1:${ports.grpcJs}`, credentials.createInsecure());
  clients.push({
    name: "grpc-js unary (client and server)",
    call: () => new Promise((resolve, reject) => grpcClient.add(req, (err, res) => (err ? reject(err) : resolve(res)))),
    close: () => grpcClient.close(),
  });
  try {
    return await measureAll(clients);
  } finally {
    for (const c of clients) await c.close();
  }
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

  const placements: { title: string; cpu: number | undefined }[] = canPin
    ? [
        { title: "servers on the other CPU (like two machines)", cpu: 1 },
        { title: "servers on the same CPU as the client", cpu: 0 },
      ]
    : [{ title: "servers wherever the OS puts them (taskset not available)", cpu: undefined }];
  for (const place of placements) {
    const servers = await startServers(place.cpu);
    try {
      process.stdout.write(
        `\n## Round trips, ${place.title}: Add on loopback; ${ROUNDS} interleaved rounds of ${LATENCY_CALLS} sequential calls and ${THROUGHPUT_CALLS} calls with ${IN_FLIGHT} in flight\n\n`,
      );
      process.stdout.write("| transport | p50 µs | p99 µs | calls/s |\n|---|---|---|---|\n");
      const rows = await roundTrips(servers.ports);
      for (const r of rows) process.stdout.write(`| ${r.name} | ${f1(r.p50us)} | ${f1(r.p99us)} | ${f0(r.callsPerSec)} |\n`);
      const grpc = rows.find((r) => r.name.startsWith("grpc-js"))!;
      const tcp = rows.find((r) => r.name === "ours: tcp")!;
      const h2 = rows.find((r) => r.name === "ours: http2")!;
      process.stdout.write(`\nTCP p50 is ${(grpc.p50us / tcp.p50us).toFixed(1)}× lower than grpc-js (target ≥ 5×).\n`);
      process.stdout.write(`Our HTTP/2 p50 is ${(grpc.p50us / h2.p50us).toFixed(2)}× lower than grpc-js's, throughput ${(h2.callsPerSec / grpc.callsPerSec).toFixed(2)}× (target ≥ 1).\n`);
    } finally {
      servers.stop();
    }
  }
}

function pinnedRun(): boolean {
  if (!canPin || process.env[PINNED]) return false;
  const r = spawnSync("taskset", ["-c", "0", process.execPath, __filename], { stdio: "inherit", env: { ...process.env, [PINNED]: "1" } });
  process.exitCode = r.status ?? 1;
  return true;
}

if (require.main === module && !pinnedRun()) void main();
