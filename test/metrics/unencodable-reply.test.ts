// A handler's reply that cannot be encoded (an int64 field holding 1.5) reaches the client
// as INTERNAL: the call failed. The call stream, the metrics and the log are told that
// outcome — the code and message the client got — not the OK the handler meant.
//
// The real gRPC server and interceptor on a real unix socket, with one handler of our own:
// no handler of the driver's returns such a reply.
import { strict as assert } from "node:assert";
import { promises as fsp } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import { connect } from "../../src/client/csi-client";
import { Code } from "../../src/csi/errors";
import { NodeDefinition, type NodeGetInfoRequest, type NodeGetInfoResponse } from "../../src/gen/csi";
import { CallEvents } from "../../src/server/call-events";
import type { Driver } from "../../src/server/driver";
import { GrpcServer } from "../../src/server/grpc-server";
import { intercept, type CallRecord } from "../../src/server/interceptor";
import { KeyedLocks } from "../../src/server/locks";
import { createLogger } from "../../src/server/logger";

describe("a reply that cannot be encoded", () => {
  let dir: string;
  let listener: net.Server;
  let grpc: GrpcServer;
  const events = new CallEvents();
  const records: CallRecord[] = [];
  const logs: Record<string, unknown>[] = [];

  before(async () => {
    dir = await fsp.mkdtemp(path.join(tmpdir(), "unencodable-"));
    const log = createLogger({ write: (line) => logs.push(JSON.parse(line) as Record<string, unknown>) });
    const driver = { log } as unknown as Driver;
    const deps = { driver, locks: new KeyedLocks(), onCall: (rec: CallRecord) => (records.push(rec), events.publish(rec)) };
    // max_volumes_per_node is an int64: 1.5 cannot be encoded.
    const handle = async (): Promise<NodeGetInfoResponse> => ({ nodeId: "n1", maxVolumesPerNode: 1.5, accessibleTopology: undefined });
    const nodeGetInfo = intercept<NodeGetInfoRequest, NodeGetInfoResponse>("Node", "NodeGetInfo", { handle }, deps);
    grpc = new GrpcServer({ maxMessageBytes: 4 * 1024 * 1024 });
    grpc.addService({ fullName: NodeDefinition.fullName, methods: { nodeGetInfo: NodeDefinition.methods.nodeGetInfo } }, { nodeGetInfo });
    listener = net.createServer((socket) => grpc.accept(socket));
    await new Promise<void>((resolve) => listener.listen(path.join(dir, "csi.sock"), resolve));
  });

  after(async () => {
    await grpc.close(1000);
    await new Promise((resolve) => listener.close(resolve));
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("is answered INTERNAL, and the call stream, the metrics' record and the log say so, with the client's message", async () => {
    const client = connect(`unix://${path.join(dir, "csi.sock")}`);
    const got = await client.node.nodeGetInfo({}).then(
      () => undefined,
      (err: ServiceError) => err,
    );
    client.close();
    assert.ok(got, "the call failed");
    assert.equal(got.code, Code.INTERNAL);
    assert.match(got.details, /the reply could not be encoded/);

    assert.equal(records.length, 1);
    assert.equal(records[0]!.code, Code.INTERNAL, "the record the metrics count");
    const [event] = events.recent();
    assert.equal(event!.code, "INTERNAL");
    assert.equal(event!.error, got.details);
    assert.equal(event!.response, undefined, "no reply went out");
    const line = logs.find((l) => l["rpc"] === "NodeGetInfo")!;
    assert.equal(line["msg"], "rpc failed");
    assert.equal(line["level"], "error");
    assert.equal(line["code"], "INTERNAL");
    assert.equal(line["error"], got.details);
  });
});
