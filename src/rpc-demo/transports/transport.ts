/**
 * What every transport offers a caller, and the typed call on top of it.
 *
 * A client transport moves opaque bytes: it takes a procedure's call ID and
 * the encoded arguments and returns the encoded results (or throws an
 * RpcError). Encoding and decoding happen above it, in `callProcedure`, so
 * any codec rides on any transport — the layers a class should see apart.
 */
import type { AnyProcedure, Procedure } from "../call-ids/registry";
import { formatNumber } from "../call-ids/registry";
import { messageToJson, type Codec } from "../codecs/codec";
import { Code, RpcError } from "../rpc-error";
import type { FaultInjector } from "../faults/faults";
import type { Trace } from "../trace";

export type TransportName = "tcp" | "udp" | "http2";
export const TRANSPORT_NAMES: readonly TransportName[] = ["tcp", "udp", "http2"];

export function transportName(s: string): TransportName {
  if (s === "tcp" || s === "udp" || s === "http2") return s;
  throw new Error(`unknown transport ${JSON.stringify(s)} (tcp, udp or http2)`);
}

export interface CallOptions {
  /** The call's deadline, in ms from now. */
  readonly timeoutMs?: number;
  readonly trace?: Trace;
}

export interface ClientTransport {
  readonly name: TransportName;
  /** Send encoded arguments, get encoded results. Throws RpcError. */
  roundTrip(proc: AnyProcedure, codec: Codec, body: Buffer, opts?: CallOptions): Promise<Buffer>;
  close(): Promise<void>;
}

export interface ClientOptions {
  readonly host?: string;
  readonly port: number;
  readonly faults?: FaultInjector;
}

export interface ServerTransport {
  readonly name: TransportName;
  /** The port it listens on (the real one when 0 was asked for). */
  readonly port: number;
  close(): Promise<void>;
}

/** Encode, send, receive, decode: one typed remote call. */
export async function callProcedure<Req, Res>(
  transport: ClientTransport,
  codec: Codec,
  proc: Procedure<Req, Res>,
  req: Req,
  opts: CallOptions = {},
): Promise<Res> {
  const trace = opts.trace;
  trace?.step("client", "call-id", `look up the call ID of ${proc.name}`, {
    notes: [
      `by name  ${proc.path}`,
      `numeric  ${formatNumber(proc.number)}`,
      // Both IDs are the procedure's, but only one goes on the wire: which one is the transport's choice.
      transport.name === "http2"
        ? "(over HTTP/2 only the name is sent, as the :path header; the numbers are not)"
        : "(over TCP and UDP only the numbers are sent, in the call header; the name is not)",
    ],
  });
  const body = Buffer.from(codec.encode(proc.request, req));
  trace?.step("client", "codec", `encode the arguments (${codec.name}, ${body.length} bytes)`, {
    bytes: body,
    what: "message",
    typeName: codec.name === "json" ? undefined : proc.request.fullName,
  });
  const out = await transport.roundTrip(proc as AnyProcedure, codec, body, opts);
  let res: Res;
  try {
    res = codec.decode(proc.response, out);
  } catch (err) {
    throw new RpcError(Code.INTERNAL, `cannot decode the ${proc.response.fullName} reply: ${err instanceof Error ? err.message : String(err)}`);
  }
  trace?.step("client", "codec", `decode the reply (${codec.name})`, { notes: [JSON.stringify(messageToJson(proc.response, res))] });
  return res;
}
