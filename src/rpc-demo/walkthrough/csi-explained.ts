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
import { hostProblem } from "../../server/host-flag";
import { messageFromJson, messageToJson, messageType, protobufCodec, type MessageType } from "../codecs/codec";
import { PROTO_DIR } from "../codecs/schema";
import { RpcError } from "../rpc-error";
import { Trace } from "../trace";
import { Http2Client, type Http2ClientOptions } from "../transports/http2-client";
import { narrate } from "./narrate";

const CREATE_VOLUME = "/csi.v1.Controller/CreateVolume";
const DELETE_VOLUME = "/csi.v1.Controller/DeleteVolume";
/** CSI messages as our codec reads them from csi.proto: field names as in ts-proto, 64-bit integers as BigInt. */
type CsiMessage = Record<string, unknown>;
const csi = (name: string): MessageType<CsiMessage> => messageType<CsiMessage>(`csi.v1.${name}`);
const Request = csi("CreateVolumeRequest");
const Response = csi("CreateVolumeResponse");
const DeleteRequest = csi("DeleteVolumeRequest");
const DeleteResponse = csi("DeleteVolumeResponse");

export interface CsiExplainedOptions {
  /** unix:///path/to/csi.sock or tcp://host:port of a running driver; absent: start one. */
  readonly endpoint: string | undefined;
  readonly volumeName: string;
  /** Leave the volume in the driver at the end (it is deleted otherwise). */
  readonly keep?: boolean;
  readonly plain: boolean;
  readonly write: (text: string) => void;
  /**
   * Given, as the demo starts, what stops it early (the CLI's Ctrl-C, SIGTERM and the end of its parent):
   * the call in flight finishes, the volume made is deleted, the connection closed and the driver started stopped.
   */
  readonly stoppable?: (close: () => Promise<void>) => void;
}

interface Driver {
  readonly socketPath: string;
  /** Resolves when it logs "ready"; rejects if it exits first or takes over 10 s. */
  readonly ready: Promise<void>;
  /** SIGTERM, wait for it to exit, remove its directory. Idempotent; safe while it is still starting. */
  stop(): Promise<void>;
}

/** Start `csi-lab driver` on a temporary socket and root. */
function startDriver(): Driver {
  const dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-rpc-"));
  const socketPath = path.join(dir, "csi.sock");
  const bin = path.join(PROTO_DIR, "..", "bin", "csi-lab.js");
  const child: ChildProcess = spawn(process.execPath, [bin, "driver", "--endpoint", `unix://${socketPath}`, "--node-id", "n1", "--root", path.join(dir, "root")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // The last resort, if this process exits without stopping it (a second
  // Ctrl-C, an uncaught error): "exit" handlers run on the way out, and
  // kill() is synchronous. (The driver also watches its parent, this process.)
  const orphanGuard = () => {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", orphanGuard);
  const ready = new Promise<void>((resolve, reject) => {
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
  ready.catch(() => undefined); // whoever awaits it sees the error; a stop meanwhile does not
  let stopped: Promise<void> | undefined;
  return {
    socketPath,
    ready,
    stop: () =>
      (stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          await exited;
        }
        process.off("exit", orphanGuard);
        rmSync(dir, { recursive: true, force: true });
      })()),
  };
}

/** Where a driver's endpoint is: a unix socket, or host and port. */
export function endpointAddress(endpoint: string): Http2ClientOptions & { readonly label: string } {
  if (endpoint.startsWith("unix://") || endpoint.startsWith("/")) {
    const socketPath = endpoint.startsWith("/") ? endpoint : endpoint.slice("unix://".length);
    if (path.isAbsolute(socketPath)) return { socketPath, label: `unix://${socketPath}` };
  }
  const m = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/\[\]]+):(\d{1,5})$/.exec(endpoint);
  const host = m?.[1]!.replace(/^\[|\]$/g, "");
  if (m && host !== undefined && !hostProblem(host) && Number(m[2]) >= 1 && Number(m[2]) <= 65535) {
    return { host, port: Number(m[2]), label: endpoint };
  }
  throw new Error(`--endpoint must be unix:///absolute/path.sock or tcp://host:port (port 1-65535), not ${JSON.stringify(endpoint)}`);
}

/** One CreateVolume, traced from the caller's side. */
async function createVolume(client: Http2Client, req: CsiMessage, trace: Trace): Promise<CsiMessage> {
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
    notes: [JSON.stringify(messageToJson(Response, reply))],
  });
  return reply;
}

const volumeIdOf = (reply: CsiMessage | undefined): string | undefined => (reply?.["volume"] as CsiMessage | undefined)?.["volumeId"] as string | undefined;

export async function csiExplained(opts: CsiExplainedOptions): Promise<{ ok: boolean }> {
  const { write } = opts;
  const address = opts.endpoint === undefined ? undefined : endpointAddress(opts.endpoint);
  const section = (title: string, trace: Trace, start: bigint) => {
    write(`\n== ${title}\n`);
    const story = narrate(trace, start, { plain: opts.plain });
    for (const s of story.steps) write(s + "\n");
    write(story.summary + "\n");
  };

  // The demo deletes the volume it made, whatever happens: at the end, after
  // an error, or when it is stopped (after the call in flight, which may
  // create it); then it stops the driver it started.
  let started: Driver | undefined;
  let client: Http2Client | undefined;
  let made: string | undefined;
  let inflight: Promise<unknown> = Promise.resolve();
  let stopping = false;
  let cleaned: Promise<void> | undefined;
  const cleanUp = (): Promise<void> =>
    (cleaned ??= (async () => {
      stopping = true;
      await inflight.catch(() => undefined);
      if (made === undefined || opts.keep || !client) return;
      const body = Buffer.from(protobufCodec.encode(DeleteRequest, { volumeId: made, secrets: {} }));
      const res = await client.unary(DELETE_VOLUME, "application/grpc", body, { timeoutMs: 10_000 });
      protobufCodec.decode(DeleteResponse, res.body);
      write(`\n== Clean-up\n\nDeleteVolume ${JSON.stringify(made)}: done. The demo leaves nothing behind in the driver (--keep to leave it).`);
      made = undefined;
    })());
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      try {
        await cleanUp();
      } finally {
        await client?.close();
        await started?.stop();
      }
    })());
  // Once stopping, what the demo was doing may fail (its driver stopped under it): it waits for the exit instead.
  const unlessStopped = async <T>(step: Promise<T>): Promise<T> => {
    try {
      return await step;
    } catch (err) {
      if (stopping) await new Promise(() => undefined);
      throw err;
    }
  };
  opts.stoppable?.(close);
  const create = async (req: CsiMessage, trace: Trace): Promise<CsiMessage> => {
    // Once stopping, no new volume: wait here for the exit.
    if (stopping) await new Promise(() => undefined);
    const p = createVolume(client!, req, trace);
    inflight = p;
    const reply = await p;
    made ??= volumeIdOf(reply);
    return reply;
  };

  try {
    if (address === undefined) {
      started = startDriver();
      await unlessStopped(started.ready);
    }
    const where = started ? { socketPath: started.socketPath, label: `unix://${started.socketPath}` } : address!;
    client = await unlessStopped(Http2Client.connect(where));
    if (stopping) await new Promise(() => undefined);
    write(`CSI explained: CreateVolume to the csi-lab driver on ${where.label}${started ? " (started for this walkthrough)" : ""}`);
    // The request as the external-provisioner would build it, written in proto3 JSON.
    const req = messageFromJson(Request, {
      name: opts.volumeName,
      capacityRange: { requiredBytes: String(1024 * 1024) },
      volumeCapabilities: [{ mount: {}, accessMode: { mode: "SINGLE_NODE_WRITER" } }],
    });

    // Load the CSI schema and compile the codec before the clock starts.
    protobufCodec.decode(Response, protobufCodec.encode(Response, {}));
    protobufCodec.decode(Request, protobufCodec.encode(Request, req));

    let trace = new Trace();
    let t0 = process.hrtime.bigint();
    const first = await create(req, trace);
    section("1. CreateVolume, as the external-provisioner sends it", trace, t0);

    write("\n✗ Suppose that reply was lost (a broken connection, a provisioner restart): the caller cannot");
    write("  tell whether the volume was made. It must ask again — and a second volume would leak storage.");
    trace = new Trace();
    t0 = process.hrtime.bigint();
    const again = await create(req, trace);
    section("2. The same CreateVolume again (a retry)", trace, t0);
    const same = volumeIdOf(again) === volumeIdOf(first);
    write(
      same
        ? `✓ Same volume_id ${volumeIdOf(again)}: CreateVolume is idempotent by name, so retrying is safe.`
        : `✗ A different volume_id (${volumeIdOf(first)} then ${volumeIdOf(again)}): the driver is not idempotent!`,
    );

    trace = new Trace();
    t0 = process.hrtime.bigint();
    let conflict: RpcError | undefined;
    try {
      const bigger = String(64 * 1024 * 1024);
      await create({ ...req, capacityRange: messageFromJson(csi("CapacityRange"), { requiredBytes: bigger, limitBytes: bigger }) }, trace);
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
    await close();
  }
}
