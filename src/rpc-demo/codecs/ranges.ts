/**
 * What values each scalar type can hold.
 *
 * A protobuf schema is a promise about values, not only about bytes: an
 * int32 field holds −2^31…2^31−1, a uint64 field 0…2^64−1. A value outside
 * its field's range cannot be encoded without changing it (the bytes would
 * silently wrap around), so both codecs refuse it and name the field, the
 * value and the range instead. The same words explain a field's type in the
 * CLI's help.
 */
import { Code, RpcError } from "../rpc-error";
import { is64Bit, Kind, type FieldSchema } from "./schema";

interface IntRange {
  readonly min: bigint;
  readonly max: bigint;
}

const INT32: IntRange = { min: -(2n ** 31n), max: 2n ** 31n - 1n };
const UINT32: IntRange = { min: 0n, max: 2n ** 32n - 1n };
const INT64: IntRange = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const UINT64: IntRange = { min: 0n, max: 2n ** 64n - 1n };

/** The range of an integer kind (enums are int32 on the wire), or undefined. */
export function intRange(kind: Kind): IntRange | undefined {
  switch (kind) {
    case Kind.INT32:
    case Kind.SINT32:
    case Kind.SFIXED32:
    case Kind.ENUM:
      return INT32;
    case Kind.UINT32:
    case Kind.FIXED32:
      return UINT32;
    case Kind.INT64:
    case Kind.SINT64:
    case Kind.SFIXED64:
      return INT64;
    case Kind.UINT64:
    case Kind.FIXED64:
      return UINT64;
    default:
      return undefined;
  }
}

/** The largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** A field's type with what its values may be, for errors and help. */
export function describeType(f: FieldSchema): string {
  const range = intRange(f.kind);
  if (f.kind === Kind.ENUM) return `enum ${f.typeName} (${[...f.enumNumbers!.keys()].join(", ")}, or a number)`;
  if (range) return `${f.typeName} (a whole number from ${range.min} to ${range.max}${is64Bit(f.kind) ? ", in JSON best as a string" : ""})`;
  switch (f.kind) {
    case Kind.FLOAT:
      return `float (a number of at most ±${FLOAT32_MAX}, or "NaN", "Infinity", "-Infinity")`;
    case Kind.DOUBLE:
      return `double (a number, or "NaN", "Infinity", "-Infinity")`;
    case Kind.BOOL:
      return "bool (true or false)";
    case Kind.STRING:
      return "string";
    case Kind.BYTES:
      return "bytes (base64 in JSON)";
    default:
      return f.typeName;
  }
}

/** INVALID_ARGUMENT: "field a: 2.5 is not a whole number; expected sint64 (…)". */
export function invalidValue(path: string, value: unknown, f: FieldSchema, problem: string): RpcError {
  return new RpcError(Code.INVALID_ARGUMENT, `field ${path}: ${formatValue(value)} ${problem}; expected ${describeType(f)}`);
}

/**
 * Checks an integer value of a field (a number or a BigInt) before it is
 * encoded; throws INVALID_ARGUMENT naming the field if it does not fit.
 */
export function checkInteger(f: FieldSchema, v: unknown): void {
  const range = intRange(f.kind)!;
  if (typeof v === "number") {
    if (Number.isSafeInteger(v) && v >= Number(range.min) && v <= Number(range.max)) return;
  } else if (typeof v === "bigint") {
    if (v >= range.min && v <= range.max) return;
  }
  throw invalidValue(f.protoName, v, f, typeof v === "number" && !Number.isInteger(v) ? "is not a whole number" : "is out of range");
}

/** A value as a person would write it: 2.5, -0, "two", 9223372036854775807. */
export function formatValue(v: unknown): string {
  let s: string;
  if (typeof v === "bigint") s = v.toString();
  else if (typeof v === "number") s = Object.is(v, -0) ? "-0" : String(v);
  else if (typeof v === "string") s = JSON.stringify(v);
  else if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.getPrototypeOf(v) !== Object.prototype) s = String(v); // a number kept as text
  else s = JSON.stringify(v, (_, x: unknown) => (typeof x === "bigint" ? x.toString() : x)) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 59)}…` : s;
}
