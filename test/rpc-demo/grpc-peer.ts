// A stock grpc-js peer built from nothing but proto/rpc-demo.proto, as any
// gRPC user would: @grpc/proto-loader reads the file, grpc-js does the rest.
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PROTO_DIR } from "../../src/rpc-demo/codecs/schema";

export interface PlaygroundClient extends grpc.Client {
  Add(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { sum: string }) => void): void;
  Fail(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: object) => void): void;
  Sleep(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: object) => void): void;
  Echo(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Record<string, unknown>) => void): void;
}

export function loadPlayground(): grpc.ServiceClientConstructor {
  // 64-bit integers as decimal strings: exact, as in proto3 JSON.
  const def = protoLoader.loadSync(path.join(PROTO_DIR, "rpc-demo.proto"), { longs: String, enums: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { csilab: { rpcdemo: { v1: { Playground: grpc.ServiceClientConstructor } } } };
  return pkg.csilab.rpcdemo.v1.Playground;
}

export function grpcJsClient(port: number): PlaygroundClient {
  const Playground = loadPlayground();
  return new Playground(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as PlaygroundClient;
}

/** Call a grpc-js client method as a promise. */
export function unary<T>(fn: (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: T) => void) => void, req: object, opts: grpc.CallOptions = {}): Promise<T> {
  return new Promise((resolve, reject) => fn(req, opts, (err, res) => (err ? reject(err) : resolve(res as T))));
}
