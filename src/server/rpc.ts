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

/** The message type a ts-proto codec (`X.decode`) makes. */
type Decoded<C> = C extends { decode(input: Uint8Array, length?: number): infer T } ? T : never;

/**
 * One Rpc per method of a ts-proto service definition (`typeof
 * IdentityDefinition`), keyed like its methods, with the request and reply
 * types of each.
 */
export type RpcTable<D extends { methods: object }> = {
  [K in keyof D["methods"]]: D["methods"][K] extends { requestType: infer Q; responseType: infer R } ? Rpc<Decoded<Q>, Decoded<R>> : never;
};
