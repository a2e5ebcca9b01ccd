/**
 * The one interceptor every CSI call passes through.
 *
 * gRPC leaves cross-cutting work to "interceptors" wrapped around handlers.
 * Ours does, for every RPC and in this order:
 *   1. reject requests whose bytes did not decode (INVALID_ARGUMENT — gRPC
 *      itself would say INTERNAL, which blames the server),
 *   2. take the per-volume locks the handler names (busy → ABORTED),
 *   3. run the handler with a context (driver, logger, cancellation),
 *   4. turn whatever it threw into a CSI status with a readable message —
 *      the stack goes to the log, never into the reply,
 *   5. log one JSON line (method, volume, code, duration; secrets redacted)
 *      and report the call to the metrics observer, with the outcome the
 *      client got: a reply the server could not encode went out INTERNAL;
 *      a handler that finished after the call's deadline passed, or after
 *      the client cancelled, is recorded as the client was answered
 *      (DEADLINE_EXCEEDED, CANCELLED), its own late outcome in the message.
 */
import { CsiError, Code, codeName } from "../csi/errors";
import type { Driver } from "./driver";
import type { Level } from "./logger";
import type { MessageCodec, ServiceDefinition, ServiceHandlers, UnaryHandler } from "./grpc-server";
import { KeyedLocks } from "./locks";
import { redact } from "./redact";
import type { CallContext, Rpc, RpcTable } from "./rpc";

/** What the metrics layer is told about each finished call. */
export interface CallRecord {
  service: string;
  method: string;
  /** The code the client got. */
  code: Code;
  /** From the call's start to its answer (a handler may go on after its deadline: the message says how long). */
  seconds: number;
  /** The request's volume_id, when it has one. */
  volumeId?: string;
  /**
   * The request and reply as the handler saw them (references, not copies: call-events.ts redacts them later,
   * if anyone reads), or `{ omitted: "a request of N bytes" }` for one past MAX_RECORDED_MESSAGE.
   */
  request?: unknown;
  response?: unknown;
  /** The failed call's message. */
  error?: string;
}

export interface InterceptorDeps {
  driver: Driver;
  locks: KeyedLocks;
  onCall?: (rec: CallRecord) => void;
  /** Called when a handler starts and ends, so shutdown can wait for in-flight calls. */
  inflight?: { start(): void; end(): void };
}

const DECODE_FAILED = Symbol("decode failed");
interface DecodeFailure {
  [DECODE_FAILED]: string;
}

function isDecodeFailure(x: unknown): x is DecodeFailure {
  return typeof x === "object" && x !== null && DECODE_FAILED in x;
}

/**
 * A copy of a ts-proto service definition whose request decoders never
 * throw: a malformed message becomes a marker the interceptor answers with
 * INVALID_ARGUMENT.
 */
export function withSafeDecoding<D extends ServiceDefinition>(definition: D): D {
  const methods: ServiceDefinition["methods"] = {};
  for (const [name, method] of Object.entries(definition.methods)) {
    const safe: MessageCodec = {
      encode: (m) => method.requestType.encode(m),
      decode: (bytes) => {
        try {
          return method.requestType.decode(bytes);
        } catch (err) {
          return { [DECODE_FAILED]: err instanceof Error ? err.message : String(err) } satisfies DecodeFailure;
        }
      },
    };
    methods[name] = { ...method, requestType: safe };
  }
  return { ...definition, methods };
}

/**
 * The answer to a request that did not decode. The generated codecs keep
 * 64-bit integers as JavaScript numbers (buf.gen.yaml: forceLong=number),
 * exact up to 2^53 − 1, and refuse a larger one while decoding. The only
 * 64-bit fields a request carries are byte counts (capacity_range), and a
 * size past 8 PiB is well formed but more than any volume here can be:
 * OUT_OF_RANGE, the spec's answer to an unsupported capacity, not
 * "could not be decoded". (A limit_bytes that large is refused as well,
 * though a smaller volume would do: the codec does not say which field
 * it was.)
 */
function decodeError(method: string, problem: string): CsiError {
  if (problem.includes("larger than Number.MAX_SAFE_INTEGER")) {
    return new CsiError(
      Code.OUT_OF_RANGE,
      `the ${method} request holds a byte count above 9007199254740991 (8 PiB), more than any volume of this driver can be: ask for less, and give limit_bytes no more than that`,
    );
  }
  return new CsiError(Code.INVALID_ARGUMENT, `the ${method} request could not be decoded: ${problem}`);
}

/**
 * The largest request or reply a CallRecord holds; a larger one is kept as
 * its size only. CSI's maps (parameters, secrets, contexts) are at most
 * 128 KiB each; the rest of a request is ids and paths. A client sending
 * messages up to the 4 MiB limit would otherwise have the call stream's
 * ring hold 512 of them: 2 GiB. A reply has no such limit (a ListVolumes
 * page, a ValidateVolumeCapabilities echoing every capability asked): its
 * size is the one the server encoded it to (UnaryCall.replyBytes), so
 * measuring it costs nothing more.
 */
export const MAX_RECORDED_MESSAGE = 512 * 1024;

const MAX_LOGGED_FIELD = 1024;

/** An ID or path as a log line or the call stream shows it: ids and paths are short, a longer one (refused by validation) is cut. */
export function cutField(v: string): string {
  return v.length > MAX_LOGGED_FIELD ? `${v.slice(0, MAX_LOGGED_FIELD)}… (${v.length} characters)` : v;
}

// Fields worth a column in every log line, when the request has them.
const LOG_FIELDS = ["volumeId", "name", "sourceVolumeId", "snapshotId", "groupSnapshotId", "nodeId", "targetPath", "stagingTargetPath"] as const;

function summary(req: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof req !== "object" || req === null) return out;
  for (const f of LOG_FIELDS) {
    const v = (req as Record<string, unknown>)[f];
    // So no log line carries megabytes.
    if (typeof v === "string" && v !== "") out[f] = cutField(v);
  }
  return out;
}

let callCounter = 0;

/** Wrap one Rpc as a unary handler for the gRPC server (grpc-server.ts). */
export function intercept<Req, Res>(service: string, method: string, rpc: Rpc<Req, Res>, deps: InterceptorDeps): UnaryHandler<Req, Res> {
  const { driver, locks } = deps;
  return (call, callback) => {
    const started = process.hrtime.bigint();
    const callId = (++callCounter).toString(36);
    const req = call.request as unknown;
    const picked = summary(req);
    const fields = { rpc: method, call: callId, ...picked };
    // The call's fields go into each line, merged only for lines that are written.
    const at =
      (level: Level) =>
      (m: string, f?: Record<string, unknown>): void => {
        if (driver.log.enabled(level)) driver.log[level](m, { ...fields, ...f });
      };
    const log = { enabled: driver.log.enabled, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
    let keys: string[] = [];
    let settled = false;
    deps.inflight?.start();

    const finish = (failed: CsiError | undefined, res?: Res) => {
      if (settled) return;
      settled = true;
      locks.release(keys);
      const ended = process.hrtime.bigint();
      // The client stopped waiting before the handler finished (its deadline passed, or it cancelled): it has its answer.
      const early = call.outcome;
      if (failed) callback({ code: failed.code, details: failed.message });
      else callback(null, res);
      // What the client got: the server encodes the reply in the callback, and one it cannot encode is answered INTERNAL.
      const got = call.outcome;
      let err = failed;
      if (early && early.code !== (failed?.code ?? Code.OK)) {
        const total = Math.round(Number(ended - started) / 1e3) / 1e3;
        const handler = failed ? `with ${codeName(failed.code)}: ${failed.message}` : "with OK";
        const note = `the handler finished later, ${total} ms after the call came, ${handler} (not sent)`;
        err = new CsiError(early.code, `${early.details}; ${note}`, { cause: failed?.cause });
      } else if (!failed && got && got.code !== Code.OK) {
        err = new CsiError(got.code, got.details);
      }
      const seconds = Number((early?.at ?? ended) - started) / 1e9;
      const code = err ? err.code : Code.OK;
      const line = { code: codeName(code), ms: Math.round(seconds * 1e6) / 1e3 };
      if (err) {
        const cause = err.cause instanceof Error ? { cause: err.cause.stack ?? err.cause.message } : {};
        const level = [code, failed?.code].some((c) => c === Code.INTERNAL || c === Code.UNKNOWN) ? "error" : "info";
        log[level]("rpc failed", { ...line, error: err.message, ...cause });
      } else {
        log.info("rpc", line);
      }
      const volumeId = typeof picked.volumeId === "string" ? picked.volumeId : undefined;
      // The record is kept (call-events.ts keeps the last 512): a request or reply past MAX_RECORDED_MESSAGE is kept as its size only.
      // The reply's size is known here: the callback above encoded it.
      const request = call.requestBytes > MAX_RECORDED_MESSAGE ? { omitted: `a request of ${call.requestBytes} bytes` } : req;
      // A reply that was not sent is not shown: the record says what the client got.
      const response = err ? undefined : call.replyBytes > MAX_RECORDED_MESSAGE ? { omitted: `a reply of ${call.replyBytes} bytes` } : res;
      deps.onCall?.({ service, method, code, seconds, volumeId, request, response, error: err?.message });
      deps.inflight?.end();
    };

    if (isDecodeFailure(req)) {
      finish(decodeError(method, req[DECODE_FAILED]));
      return;
    }
    if (driver.log.enabled("debug")) log.debug("request", { request: redact(req) });

    try {
      keys = rpc.lockKeys?.(req as Req, driver) ?? [];
    } catch (err) {
      keys = [];
      finish(CsiError.from(err));
      return;
    }
    const busy = locks.tryAcquire(keys, `${method}/${callId}`);
    if (busy !== undefined) {
      keys = []; // none were taken
      finish(new CsiError(Code.ABORTED, `another operation on ${busy} is in progress (${locks.holderOf(busy)?.split("/")[0]}); retry later`));
      return;
    }

    const deadline = call.getDeadline();
    const deadlineDate = deadline instanceof Date ? deadline : Number.isFinite(deadline) ? new Date(deadline) : undefined;
    // The abort signal is made only for handlers that ask for it (those that
    // run slow external work); most calls finish in a millisecond or two.
    // The server answers the call at its deadline, or finds the client gone,
    // then tells of it as a cancellation: the signal aborts with that answer.
    let abort: AbortController | undefined;
    const signal = (): AbortSignal => {
      if (abort) return abort.signal;
      const ac = (abort = new AbortController());
      call.on("cancelled", () => {
        const o = call.outcome;
        if (!settled) ac.abort(new CsiError(o?.code ?? Code.CANCELLED, o?.details ?? "the client cancelled the call"));
      });
      return ac.signal;
    };

    const ctx: CallContext = {
      driver,
      log,
      get signal() {
        return signal();
      },
      deadline: deadlineDate,
    };
    rpc.handle(req as Req, ctx).then(
      (res) => finish(undefined, res),
      (err: unknown) => finish(CsiError.from(err)),
    );
  };
}

/** Wrap every Rpc of a service table: one handler per method, keyed as the table is. */
export function interceptAll<D extends ServiceDefinition>(service: string, table: RpcTable<D>, deps: InterceptorDeps): ServiceHandlers {
  const out: ServiceHandlers = {};
  for (const [key, rpc] of Object.entries(table as unknown as Record<string, Rpc<unknown, unknown>>)) {
    const method = key.charAt(0).toUpperCase() + key.slice(1);
    out[key] = intercept(service, method, rpc, deps);
  }
  return out;
}
