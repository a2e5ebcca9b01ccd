// The benchmark's server process: every transport's server, plus a stock
// grpc-js server, on loopback. It prints their ports as one JSON line and
// serves until its parent closes stdin. Running the servers in their own
// process gives each side its own core and event loop, as in real use.
import * as grpc from "@grpc/grpc-js";
import { PlaygroundService, type PlaygroundServer } from "../../src/gen/rpc-demo";
import { playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { startServer } from "../../src/rpc-demo/transports";
import { preloadSchemas } from "../../src/rpc-demo/codecs/codec";
import { Playground } from "../../src/rpc-demo/call-ids/playground";

export interface BenchPorts {
  tcp: number;
  udp: number;
  http2: number;
  grpcJs: number;
}

async function main(): Promise<void> {
  preloadSchemas(Object.values(Playground).flatMap((p) => [p.request, p.response] as const));
  const dispatcher = playgroundDispatcher();
  const tcp = await startServer("tcp", dispatcher);
  const udp = await startServer("udp", dispatcher);
  const http2 = await startServer("http2", dispatcher);

  // grpc-js as a TypeScript project uses it: ts-proto's service definition.
  const server = new grpc.Server();
  const impl: PlaygroundServer = {
    add: (call, cb) => cb(null, { sum: (call.request.a ?? 0n) + (call.request.b ?? 0n) }),
    echo: (call, cb) => cb(null, call.request),
    increment: (_call, cb) => cb(null, { value: 1n }),
    sleep: (call, cb) => setTimeout(() => cb(null, { sleptMillis: call.request.millis ?? 0 }), call.request.millis ?? 0),
    fail: (call, cb) => cb({ code: call.request.code ?? 2, details: call.request.message ?? "" }),
  };
  server.addService(PlaygroundService, impl);
  const grpcJs = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  const ports: BenchPorts = { tcp: tcp.port, udp: udp.port, http2: http2.port, grpcJs };
  process.stdout.write(JSON.stringify(ports) + "\n");
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
}

if (require.main === module) void main();
