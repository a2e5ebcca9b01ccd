/**
 * The handler recipe.
 *
 * Every CSI RPC in this project is an `Rpc`: an async function from request
 * to reply, plus the keys it locks. Handlers follow one shape —
 * validate the request → check it against what exists → act → reply — and
 * signal failure by throwing a CsiError. Logging, locking, turning errors
 * into gRPC statuses and timing are done once, around every handler, by the
 * interceptor (interceptor.ts); handlers never touch the gRPC call object.
 */
import type { handleUnaryCall } from "@grpc/grpc-js";
import type { Driver } from "./driver";
import type { Logger } from "./logger";

export interface CallContext {
  readonly driver: Driver;
  readonly log: Logger;
  /** Aborted when the client cancels or the call's deadline passes. */
  readonly signal: AbortSignal;
  /** The client's deadline, if it sent one. */
  readonly deadline: Date | undefined;
}

export interface Rpc<Req, Res> {
  /**
   * Keys (e.g. "volume:<id>") that this call holds while it runs. A second
   * call needing one of them is answered ABORTED instead of running
   * concurrently. Called before validation, so it must cope with empty
   * fields (return [] for them).
   */
  lockKeys?: (req: Req, driver: Driver) => string[];
  handle(req: Req, ctx: CallContext): Promise<Res>;
}

export function defineRpc<Req, Res>(rpc: Rpc<Req, Res>): Rpc<Req, Res> {
  return rpc;
}

// ts-proto's server interfaces extend an index signature; keep only the
// named methods.
type KnownKeys<T> = keyof { [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K] };

/** One Rpc per method of a ts-proto `XxxServer` interface. */
export type RpcTable<S> = {
  [K in KnownKeys<S>]: S[K] extends handleUnaryCall<infer Req, infer Res> ? Rpc<Req, Res> : never;
};
