/**
 * "CSI explained": the walkthrough's narration for a real CSI call.
 *
 * A CSI driver is a gRPC server on a unix socket, and the kubelet or the
 * external-provisioner is its gRPC client. Here our own HTTP/2 client plays
 * the provisioner: it sends CreateVolume to the csi-lab driver (a running
 * one, or one started for the occasion in a temporary directory) and shows
 * the call ID (the gRPC path — CSI has no numeric IDs), the protobuf bytes
 * of request and reply with CSI's field names, and the status trailers.
 *
 * Then the worked example of idempotency: the reply "is lost" (we discard
 * it, as a dropped connection would), so the caller does not know whether
 * the volume exists and sends the same request again. CreateVolume is
 * idempotent by name, so the retry returns the same volume instead of a
 * second one. The same name with a different size is a different request,
 * and the driver answers ALREADY_EXISTS.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { CreateVolumeRequest, CreateVolumeResponse } from "../../gen/csi";
import { messageType, protobufCodec } from "../codecs/codec";
import { PROTO_DIR } from "../codecs/schema";
import { RpcError } from "../rpc-error";
import { Trace } from "../trace";
import { Http2Client } from "../transports/http2-client";
import { narrate } from "./narrate";

const CREATE_VOLUME = "/csi.v1.Controller/CreateVolume";
const Request = messageType("csi.v1.CreateVolumeRequest", CreateVolumeRequest);
const Response = messageType("csi.v1.CreateVolumeResponse", CreateVolumeResponse);

export interface CsiExplainedOptions {
  /** unix:///path/to/csi.sock of a running driver; absent: start one. */
  readonly endpoint: string | undefined;
  readonly volumeName: string;
  readonly plain: boolean;
  readonly write: (text: string) => void;
}

interface Driver {
  readonly socketPath: string;
  stop(): Promise<void>;
}

/** Start `csi-lab driver` on a temporary socket and root; resolves when it logs "ready". */
async function startDriver(): Promise<Driver> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-rpc-"));
  const socketPath = path.join(dir, "csi.sock");
  const bin = path.join(PROTO_DIR, "..", "bin", "csi-lab.js");
  const child: ChildProcess = spawn(process.execPath, [bin, "driver", "--endpoint", `unix://${socketPath}`, "--node-id", "n1", "--root", path.join(dir, "root")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  // If this process dies first (Ctrl-C, a closed pipe), the driver must not
  // outlive it: "exit" handlers run on the way out, and kill() is synchronous.
  const orphanGuard = () => {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = () => process.exit(130);
  process.once("exit", orphanGuard);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  await new Promise<void>((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => reject(new Error(`the driver did not get ready in 10 s:\n${log}`)), 10_000);
    child.stderr!.on("data", (chunk: Buffer) => {
      log += chunk.toString();
      if (/"msg":"ready"/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the driver exited (${code}) before it was ready:\n${log}`));
    });
  });
  return {
    socketPath,
    stop: async () => {
      process.off("exit", orphanGuard);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function socketOf(endpoint: string): string {
  if (endpoint.startsWith("unix://")) return endpoint.slice("unix://".length);
  if (endpoint.startsWith("/")) return endpoint;
  throw new Error(`--endpoint must be unix:///absolute/path.sock, not ${endpoint}`);
}

/** One CreateVolume, traced from the caller's side. */
async function createVolume(client: Http2Client, req: CreateVolumeRequest, trace: Trace): Promise<CreateVolumeResponse> {
  trace.step("client", "call-id", "the call ID of CreateVolume", {
    notes: [`by name  ${CREATE_VOLUME}`, "(CSI is defined in gRPC: the path is the only ID; there is no numeric one)"],
  });
  const body = Buffer.from(protobufCodec.encode(Request, req));
  trace.step("client", "codec", `encode the CreateVolumeRequest (protobuf, ${body.length} bytes)`, { bytes: body, what: "message", typeName: Request.fullName });
  const res = await client.unary(CREATE_VOLUME, "application/grpc", body, { trace, timeoutMs: 10_000 });
  const reply = protobufCodec.decode(Response, res.body);
  trace.step("client", "codec", `decode the CreateVolumeResponse (${res.body.length} bytes)`, {
    bytes: res.body,
    what: "message",
    typeName: Response.fullName,
    notes: [JSON.stringify(CreateVolumeResponse.toJSON(reply))],
  });
  return reply;
}

export async function csiExplained(opts: CsiExplainedOptions): Promise<{ ok: boolean }> {
  const { write } = opts;
  const started = opts.endpoint === undefined ? await startDriver() : undefined;
  const socketPath = started ? started.socketPath : socketOf(opts.endpoint!);
  const client = await Http2Client.connect({ socketPath });
  const section = (title: string, trace: Trace, start: bigint) => {
    write(`\n== ${title}\n`);
    const story = narrate(trace, start, { plain: opts.plain });
    for (const s of story.steps) write(s + "\n");
    write(story.summary + "\n");
  };
  try {
    write(`CSI explained: CreateVolume to the csi-lab driver on unix://${socketPath}${started ? " (started for this walkthrough)" : ""}`);
    const req = CreateVolumeRequest.fromPartial({
      name: opts.volumeName,
      capacityRange: { requiredBytes: 1024 * 1024 },
      volumeCapabilities: [{ mount: { fsType: "" }, accessMode: { mode: 1 /* SINGLE_NODE_WRITER */ } }],
      parameters: {},
    });

    // Load the CSI schema and compile the codec before the clock starts.
    protobufCodec.decode(Response, protobufCodec.encode(Response, { volume: undefined }));
    protobufCodec.decode(Request, protobufCodec.encode(Request, req));

    let trace = new Trace();
    let t0 = process.hrtime.bigint();
    const first = await createVolume(client, req, trace);
    section("1. CreateVolume, as the external-provisioner sends it", trace, t0);

    write("\n✗ Suppose that reply was lost (a broken connection, a provisioner restart): the caller cannot tell");
    write("  whether the volume was made. It must ask again — and a second volume would leak storage.");
    trace = new Trace();
    t0 = process.hrtime.bigint();
    const again = await createVolume(client, req, trace);
    section("2. The same CreateVolume again (a retry)", trace, t0);
    const same = again.volume?.volumeId === first.volume?.volumeId;
    write(
      same
        ? `✓ Same volume_id ${again.volume?.volumeId}: CreateVolume is idempotent by name, so retrying is safe.`
        : `✗ A different volume_id (${first.volume?.volumeId} then ${again.volume?.volumeId}): the driver is not idempotent!`,
    );

    trace = new Trace();
    t0 = process.hrtime.bigint();
    let conflict: RpcError | undefined;
    try {
      await createVolume(client, { ...req, capacityRange: { requiredBytes: 64 * 1024 * 1024, limitBytes: 64 * 1024 * 1024 } }, trace);
    } catch (err) {
      conflict = RpcError.from(err);
    }
    section("3. Same name, different size: not a retry but a conflicting request", trace, t0);
    write(
      conflict
        ? `The driver answers ${conflict.codeName}: ${conflict.message}\n(the status travels in the grpc-status / grpc-message headers above, with no message at all)`
        : "✗ The driver accepted a conflicting request.",
    );
    return { ok: same && conflict !== undefined };
  } finally {
    await client.close();
    await started?.stop();
  }
}
