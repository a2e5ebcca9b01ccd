/**
 * Call IDs: how the server knows which function the caller meant.
 *
 * A local call jumps to an address; a remote caller has no address in the
 * server's memory, so both ends agree on an ID for every remote function
 * and the server keeps a table from ID to function. Two styles exist:
 *
 *   numeric  Sun RPC (RFC 5531) names a call by three numbers: program
 *            (the service, from a registry of assigned numbers), version,
 *            procedure. Compact and fixed-size; meaningless without the
 *            table.
 *   by name  gRPC names a call by its path, /package.Service/Method. Longer
 *            on the wire (HTTP/2 compresses it), readable, and unique as
 *            long as package names are.
 *
 * The registry holds both for every procedure, so client stubs and servers
 * in any process derive the same IDs from one definition. Misses are
 * reported the way each style does: Sun RPC tells apart an unknown program,
 * a known program at another version (with the versions it has), and an
 * unknown procedure; gRPC answers UNIMPLEMENTED.
 */
import type { MessageType } from "../codecs/codec";

export interface CallNumber {
  readonly program: number;
  readonly version: number;
  readonly procedure: number;
}

export interface Procedure<Req, Res> {
  /** The method name in the .proto: "Add". */
  readonly name: string;
  /** The gRPC-style ID: "/csilab.rpcdemo.v1.Playground/Add". */
  readonly path: string;
  /** The Sun RPC-style ID. */
  readonly number: CallNumber;
  readonly request: MessageType<Req>;
  readonly response: MessageType<Res>;
  /** Running it twice has the same effect as once (so a blind retry is safe). */
  readonly idempotent: boolean;
}

/** Any procedure, whatever its message types (they are checked where each is defined). */
export type AnyProcedure = Procedure<unknown, unknown>;

/** Why a numeric lookup failed, in RFC 5531's words. */
export type NumericMiss =
  | { readonly kind: "PROG_UNAVAIL" }
  | { readonly kind: "PROG_MISMATCH"; readonly low: number; readonly high: number }
  | { readonly kind: "PROC_UNAVAIL" };

export function formatNumber(n: CallNumber): string {
  return `program 0x${n.program.toString(16)} version ${n.version} procedure ${n.procedure}`;
}

export function describeMiss(n: CallNumber, miss: NumericMiss): string {
  switch (miss.kind) {
    case "PROG_UNAVAIL":
      return `no such procedure: program 0x${n.program.toString(16)} is not served here (PROG_UNAVAIL)`;
    case "PROG_MISMATCH":
      return `no such procedure: program 0x${n.program.toString(16)} is served at versions ${miss.low}..${miss.high}, not ${n.version} (PROG_MISMATCH)`;
    case "PROC_UNAVAIL":
      return `no such procedure: ${formatNumber(n)} (PROC_UNAVAIL)`;
  }
}

export function describePathMiss(path: string): string {
  return `no such procedure: ${path} (UNIMPLEMENTED)`;
}

const numberKey = (n: CallNumber) => `${n.program}/${n.version}/${n.procedure}`;

export class Registry {
  private readonly byPathMap = new Map<string, AnyProcedure>();
  private readonly byNumberMap = new Map<string, AnyProcedure>();
  /** program → [lowest, highest] version served */
  private readonly versions = new Map<number, [number, number]>();

  constructor(procedures: readonly AnyProcedure[] = []) {
    for (const p of procedures) this.add(p);
  }

  add(p: AnyProcedure): void {
    if (this.byPathMap.has(p.path)) throw new Error(`call ID ${p.path} is used twice`);
    const key = numberKey(p.number);
    if (this.byNumberMap.has(key)) throw new Error(`call ID ${formatNumber(p.number)} is used twice`);
    this.byPathMap.set(p.path, p);
    this.byNumberMap.set(key, p);
    const v = this.versions.get(p.number.program);
    this.versions.set(p.number.program, v ? [Math.min(v[0], p.number.version), Math.max(v[1], p.number.version)] : [p.number.version, p.number.version]);
  }

  get procedures(): AnyProcedure[] {
    return [...this.byPathMap.values()];
  }

  byPath(path: string): AnyProcedure | undefined {
    return this.byPathMap.get(path);
  }

  byNumber(n: CallNumber): AnyProcedure | NumericMiss {
    const p = this.byNumberMap.get(numberKey(n));
    if (p) return p;
    const v = this.versions.get(n.program);
    if (!v) return { kind: "PROG_UNAVAIL" };
    if (n.version < v[0] || n.version > v[1]) return { kind: "PROG_MISMATCH", low: v[0], high: v[1] };
    return { kind: "PROC_UNAVAIL" };
  }
}

export function isMiss(x: AnyProcedure | NumericMiss): x is NumericMiss {
  return "kind" in x;
}
