/**
 * How a remote call fails.
 *
 * A local call either returns or throws. A remote one can also fail in ways
 * the callee never saw: the request was lost, the server is gone, the
 * deadline passed while the reply was on its way. gRPC names them all with
 * one list of status codes, and every transport in the playground reports
 * failures with that list, so a caller handles them the same way whatever
 * carried the call. This is the one error type the playground uses.
 */
import { status } from "@grpc/grpc-js";

/** gRPC status codes: OK = 0, CANCELLED = 1, … UNAUTHENTICATED = 16. */
export const Code = status;
export type Code = status;

export function codeName(code: number): string {
  return (status as unknown as Record<number, string>)[code] ?? `CODE_${code}`;
}

export class RpcError extends Error {
  override readonly name = "RpcError";
  readonly code: Code;

  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  get codeName(): string {
    return codeName(this.code);
  }

  /**
   * Anything thrown, as an RpcError. Messages of unexpected errors stay in
   * the server: the caller learns only that something went wrong inside.
   */
  static from(err: unknown): RpcError {
    if (err instanceof RpcError) return err;
    return new RpcError(Code.INTERNAL, "internal error in the server", { cause: err });
  }
}
