/**
 * Proto3's JSON mapping: the same message as text, with its own rules.
 *
 * JSON names fields (`requestToken`, or the .proto name `request_token` on
 * input) where protobuf numbers them, and leaves out fields at their
 * default, as protobuf does. Values keep their meaning, not their bytes:
 *   - 64-bit integers are written as decimal strings, because a JSON number
 *     read into a double is exact only up to 2^53; on input a string or an
 *     exact whole number is accepted;
 *   - float and double write NaN and ±Infinity as "NaN", "Infinity",
 *     "-Infinity", which JSON numbers cannot say;
 *   - bytes are base64, enums their value's name, maps JSON objects.
 * A value that does not fit its field's type — 2.5 for an integer, "two"
 * for a number, 2^31 for an int32, a field the message does not have — is
 * refused with the field, the value and the expected type, never rounded,
 * zeroed or dropped. JSON text is read with lossless-json, so a long number
 * reaches these rules with every digit it was written with.
 */
import { parse as parseLossless } from "lossless-json";
import { Code, RpcError } from "../rpc-error";
import { FLOAT32_MAX, formatValue, intRange, invalidValue } from "./ranges";
import { defaultValue, is64Bit, isSet, Kind, type FieldSchema, type MessageSchema } from "./schema";

type Obj = Record<string, unknown>;
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A JSON number as written, digit for digit. */
export class JsonNumber {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** Parse JSON text, keeping numbers as written and refusing a key given twice. */
export function parseJsonText(text: string): unknown {
  try {
    return parseLossless(text, null, {
      parseNumber: (t) => new JsonNumber(t),
      onDuplicateKey: ({ key }) => {
        throw new Error(`the key ${JSON.stringify(key)} appears twice`);
      },
    });
  } catch (err) {
    throw new RpcError(Code.INVALID_ARGUMENT, `not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

// ---- message → JSON ------------------------------------------------------

export function toJson(schema: MessageSchema, msg: object): { [key: string]: JsonValue } {
  const out: { [key: string]: JsonValue } = {};
  for (const f of schema.declared) {
    const v = (msg as Obj)[f.jsName];
    if (!isSet(f, v)) continue;
    if (f.kind === Kind.MAP) {
      const entries: { [key: string]: JsonValue } = {};
      for (const [k, val] of Object.entries(v as Obj)) entries[k] = valueToJson(f.mapValue!, val);
      out[f.jsonName] = entries;
    } else if (f.repeated) out[f.jsonName] = (v as unknown[]).map((e) => valueToJson(f, e));
    else out[f.jsonName] = valueToJson(f, v);
  }
  return out;
}

function valueToJson(f: FieldSchema, v: unknown): JsonValue {
  switch (f.kind) {
    case Kind.MESSAGE:
      return toJson(f.message!, (v ?? {}) as object);
    case Kind.ENUM:
      return f.enumValues!.get(v as number) ?? (v as number);
    case Kind.BYTES:
      return Buffer.from(v as Uint8Array).toString("base64");
    case Kind.FLOAT:
    case Kind.DOUBLE:
      if (Number.isNaN(v)) return "NaN";
      if (v === Infinity) return "Infinity";
      if (v === -Infinity) return "-Infinity";
      return v as number;
    default:
      if (is64Bit(f.kind)) return String(v);
      return v as JsonValue;
  }
}

// ---- JSON → message ------------------------------------------------------

export interface FromJsonOptions {
  /**
   * Proto3 JSON reads `null` as "the field's default". The CLI sets this
   * false: a person who typed null meant something, so it is refused
   * instead of silently becoming 0.
   */
  readonly nullIsDefault?: boolean;
}

const byJsonKey = new WeakMap<MessageSchema, Map<string, FieldSchema>>();

function fieldsByKey(schema: MessageSchema): Map<string, FieldSchema> {
  let m = byJsonKey.get(schema);
  if (!m) {
    m = new Map();
    for (const f of schema.fields) m.set(f.jsonName, f).set(f.protoName, f);
    byJsonKey.set(schema, m);
  }
  return m;
}

/** A message from its proto3 JSON form; INVALID_ARGUMENT for anything that does not fit. */
export function fromJson(schema: MessageSchema, json: unknown, opts: FromJsonOptions = {}, path = ""): Obj {
  if (json === null || typeof json !== "object" || Array.isArray(json) || json instanceof JsonNumber) {
    const where = path ? `field ${path}` : "the message";
    throw new RpcError(Code.INVALID_ARGUMENT, `${where} must be a JSON object for ${schema.fullName}, not ${formatValue(json)}`);
  }
  const msg = blankMessage(schema);
  const fields = fieldsByKey(schema);
  const seen = new Set<FieldSchema>();
  for (const [key, value] of Object.entries(json as Obj)) {
    const f = fields.get(key);
    const at = path ? `${path}.${key}` : key;
    if (!f) {
      const names = schema.declared.map((d) => d.jsonName).join(", ") || "none";
      throw new RpcError(Code.INVALID_ARGUMENT, `unknown field ${JSON.stringify(at)}: ${schema.fullName} has no such field (its fields: ${names})`);
    }
    if (seen.has(f)) throw new RpcError(Code.INVALID_ARGUMENT, `field ${at} is given twice (as ${f.jsonName} and ${f.protoName})`);
    seen.add(f);
    if (value === null) {
      if (opts.nullIsDefault === false) {
        throw invalidValue(at, null, f, `is not a value (proto3 JSON would read it as the default, ${formatValue(zeroOf(f))}: write that, or leave the field out)`);
      }
      continue; // proto3 JSON: null means the default, which msg already holds
    }
    if (f.kind === Kind.MAP) msg[f.jsName] = mapFromJson(f, value, opts, at);
    else if (f.repeated) {
      if (!Array.isArray(value)) throw invalidValue(at, value, f, "is not a JSON array");
      msg[f.jsName] = value.map((e, i) => {
        if (e === null) throw invalidValue(`${at}[${i}]`, null, f, "cannot be an element of a list");
        return valueFromJson(f, e, opts, `${at}[${i}]`);
      });
    } else msg[f.jsName] = valueFromJson(f, value, opts, at);
  }
  return msg;
}

function zeroOf(f: FieldSchema): unknown {
  if (f.kind === Kind.MAP) return {};
  if (f.repeated) return [];
  if (f.kind === Kind.MESSAGE) return {};
  if (f.kind === Kind.ENUM) return f.enumValues!.get(0) ?? 0;
  return defaultValue(f);
}

function blankMessage(schema: MessageSchema): Obj {
  return schema.defaults.make();
}

function mapFromJson(f: FieldSchema, value: unknown, opts: FromJsonOptions, at: string): Obj {
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof JsonNumber) {
    throw invalidValue(at, value, f, "is not a JSON object");
  }
  const out: Obj = {};
  for (const [k, v] of Object.entries(value as Obj)) {
    const key = mapKeyFromJson(f.mapKey!, k, `${at}[${JSON.stringify(k)}]`);
    if (v === null) throw invalidValue(`${at}[${JSON.stringify(k)}]`, null, f.mapValue!, "cannot be a map value");
    const entry = valueFromJson(f.mapValue!, v, opts, `${at}[${JSON.stringify(k)}]`);
    // "__proto__" is a fine map key, but assigning it would change the object's prototype.
    Object.defineProperty(out, key, { value: entry, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function mapKeyFromJson(k: FieldSchema, text: string, at: string): string {
  if (k.kind === Kind.STRING) return text;
  if (k.kind === Kind.BOOL) {
    if (text === "true" || text === "false") return text;
    throw invalidValue(at, text, k, "is not a map key of this type");
  }
  return String(integerFromJson(k, text, at)); // canonical: "01" and "1" are one key
}

function valueFromJson(f: FieldSchema, v: unknown, opts: FromJsonOptions, at: string): unknown {
  switch (f.kind) {
    case Kind.MESSAGE:
      return fromJson(f.message!, v, opts, at);
    case Kind.STRING:
      if (typeof v !== "string") throw invalidValue(at, v, f, "is not a JSON string");
      return v;
    case Kind.BOOL:
      if (typeof v !== "boolean") throw invalidValue(at, v, f, "is not true or false");
      return v;
    case Kind.BYTES:
      return bytesFromJson(f, v, at);
    case Kind.ENUM:
      if (typeof v === "string" && !NUMBER_SYNTAX.test(v)) {
        const n = f.enumNumbers!.get(v);
        if (n === undefined) throw invalidValue(at, v, f, `is not a value of enum ${f.typeName}`);
        return n;
      }
      return Number(integerFromJson(f, v, at)); // an open enum keeps numbers it has no name for
    case Kind.FLOAT:
    case Kind.DOUBLE:
      return floatFromJson(f, v, at);
    default: {
      const n = integerFromJson(f, v, at);
      return is64Bit(f.kind) ? n : Number(n);
    }
  }
}

/** A JSON number, as JSON's grammar writes it. */
const NUMBER_SYNTAX = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/** A whole number of the field's range, exactly, from a JSON number or a string. */
function integerFromJson(f: FieldSchema, v: unknown, at: string): bigint {
  let n: bigint | string;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) n = "is not a number";
    else if (!Number.isInteger(v)) n = "is not a whole number";
    else if (!Number.isSafeInteger(v)) n = "is past 2^53, where a JavaScript number may have lost digits: give it as a string";
    else n = BigInt(v);
  } else if (v instanceof JsonNumber || typeof v === "string") {
    const text = String(v);
    n = NUMBER_SYNTAX.test(text) ? exactInteger(text) : "is not a number";
  } else n = "is not a number";
  if (typeof n === "string") throw invalidValue(at, v, f, n);
  const range = intRange(f.kind)!;
  if (n < range.min || n > range.max) throw invalidValue(at, v, f, "is out of range");
  return n;
}

/**
 * The exact value of a JSON number's text if it is whole (1, -0, 1.0, 1e3),
 * or why not. Nothing goes through a double, so 9223372036854775807 stays
 * 9223372036854775807.
 */
function exactInteger(text: string): bigint | string {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text)!;
  const [, sign, whole, fraction = "", exp = "0"] = m;
  let digits = (whole! + fraction).replace(/^0+(?=\d)/, "");
  const shift = Number(exp) - fraction.length;
  if (/^0+$/.test(digits)) return 0n;
  if (shift < 0) {
    const cut = digits.length + shift;
    if (cut <= 0 || !/^0+$/.test(digits.slice(cut))) return "is not a whole number";
    digits = digits.slice(0, cut);
  } else if (shift > 0) {
    if (digits.length + shift > 40) return "is out of range";
    digits += "0".repeat(shift);
  }
  return BigInt(sign + digits);
}

function floatFromJson(f: FieldSchema, v: unknown, at: string): number {
  let n: number;
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  if (typeof v === "number") n = v;
  else if ((v instanceof JsonNumber || typeof v === "string") && NUMBER_SYNTAX.test(String(v))) n = Number(String(v));
  else throw invalidValue(at, v, f, "is not a number");
  if (!Number.isFinite(n)) throw invalidValue(at, v, f, Number.isNaN(n) ? "is not a number (NaN is written \"NaN\")" : "is out of range");
  if (f.kind === Kind.FLOAT && Math.abs(n) > FLOAT32_MAX) throw invalidValue(at, v, f, "is out of range");
  return n;
}

/** Standard or URL-safe base64, with or without padding. */
function bytesFromJson(f: FieldSchema, v: unknown, at: string): Buffer {
  if (typeof v !== "string") throw invalidValue(at, v, f, "is not a base64 string");
  const body = v.replace(/={1,2}$/, "");
  const ok = (/^[A-Za-z0-9+/]*$/.test(body) || /^[A-Za-z0-9_-]*$/.test(body)) && body.length % 4 !== 1 && (body.length === v.length || v.length % 4 === 0);
  if (!ok) throw invalidValue(at, v, f, "is not base64");
  return Buffer.from(body, "base64");
}

