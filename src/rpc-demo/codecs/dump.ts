/**
 * An annotated byte dump: which bytes carry which field.
 *
 * Every field is shown as its byte ranges — the tag (field number and wire
 * type), for LEN fields the length, then the value — with what they mean.
 * Given a schema, the dump names fields and reads values with their real
 * type (a zigzagged sint64, an enum's name). Without one it does what a
 * reader without the .proto can do: the wire types still say how long each
 * value is, so it can walk the whole message, show varints as numbers and
 * guess whether LEN bytes are a nested message, text or opaque bytes. This
 * is also what makes unknown fields skippable.
 */
import { Kind, type FieldSchema, type MessageSchema } from "./schema";
import { int64ToNumber, Reader, uint64ToNumber, unzigzag, WIRE_TYPE_NAMES, malformed, WireType } from "./wire";

export interface DumpRow {
  readonly offset: number;
  readonly length: number;
  /** Nesting depth: 0 for the top message's fields. */
  readonly depth: number;
  readonly text: string;
}

/** Annotate a message's bytes. Without a schema the fields are guessed from the wire. */
export function dumpMessage(bytes: Uint8Array, schema?: MessageSchema): DumpRow[] {
  const rows: DumpRow[] = [];
  const r = new Reader(bytes);
  try {
    walk(r, r.end, schema, 0, rows);
  } catch (err) {
    rows.push({ offset: r.pos, length: Math.max(0, r.end - r.pos), depth: 0, text: `✗ ${err instanceof Error ? err.message : String(err)}` });
  }
  return rows;
}

function walk(r: Reader, end: number, schema: MessageSchema | undefined, depth: number, rows: DumpRow[]): void {
  while (r.pos < end) {
    const start = r.pos;
    const tag = r.varint32();
    const no = tag >>> 3;
    const wt = tag & 7;
    const f = schema?.byNumber.get(no);
    const fits = f !== undefined && (wt === f.tag % 8 || (f.repeated && wt === f.wireType));
    const who = f ? `${no} ${f.protoName}` : `${no}`;
    const what = f ? (fits ? f.typeName : `${f.typeName}, but the wire type does not fit: kept as unknown`) : schema ? "unknown field: kept as is" : "";
    rows.push({
      offset: start,
      length: r.pos - start,
      depth,
      text: `tag: field ${who}, wire type ${wt} ${WIRE_TYPE_NAMES[wt]}${what ? ` (${what})` : ""}`,
    });
    if (f && fits) typedValue(r, f, wt, depth, rows);
    else rawValue(r, wt, depth, rows);
    if (r.pos > end) throw malformed(`field ${no} runs past the end of its message`);
  }
}

function push(rows: DumpRow[], offset: number, r: Reader, depth: number, text: string): void {
  rows.push({ offset, length: r.pos - offset, depth, text });
}

/** The value of a field the schema knows. */
function typedValue(r: Reader, f: FieldSchema, wt: number, depth: number, rows: DumpRow[]): void {
  if (wt === WireType.LEN && f.kind !== Kind.STRING && f.kind !== Kind.BYTES) {
    const at = r.pos;
    const end = r.lengthEnd();
    push(rows, at, r, depth, `length ${end - r.pos}`);
    if (f.kind === Kind.MESSAGE || f.kind === Kind.MAP) {
      const inner = f.kind === Kind.MESSAGE ? f.message : entrySchema(f);
      walk(r, end, inner, depth + 1, rows);
    } else {
      // packed: values back to back, no tags
      while (r.pos < end) {
        const v = r.pos;
        const text = scalarText(r, f);
        push(rows, v, r, depth + 1, text);
      }
    }
    return;
  }
  const at = r.pos;
  const text = scalarText(r, f);
  push(rows, at, r, depth, text);
}

function entrySchema(f: FieldSchema): MessageSchema {
  const k = { ...f.mapKey!, protoName: "key" };
  const v = { ...f.mapValue!, protoName: "value" };
  return { fullName: `${f.protoName} entry`, fields: [k, v], byNumber: new Map([[1, k], [2, v]]), numbered: [undefined, k, v], defaults: { template: {}, lists: [], maps: [] } };
}

function scalarText(r: Reader, f: FieldSchema): string {
  switch (f.kind) {
    case Kind.STRING: {
      const at = r.pos;
      const end = r.lengthEnd();
      const n = end - r.pos;
      r.pos = at;
      return `length ${n}, then ${JSON.stringify(r.string())} (UTF-8)`;
    }
    case Kind.BYTES: {
      const b = r.bytes();
      return `length ${b.length}, then ${b.length} raw bytes`;
    }
    case Kind.INT32:
      return `int32 ${r.varint32() | 0}`;
    case Kind.ENUM: {
      const v = r.varint32() | 0;
      return `enum ${f.enumValues?.get(v) ?? "?"} = ${v}`;
    }
    case Kind.UINT32:
      return `uint32 ${r.varint32()}`;
    case Kind.SINT32: {
      const z = r.varint32();
      return `sint32 ${(z >>> 1) ^ -(z & 1)} (zigzag ${z})`;
    }
    case Kind.INT64:
      r.varint64();
      return `int64 ${big(r.lo, r.hi, true)}`;
    case Kind.UINT64:
      r.varint64();
      return `uint64 ${big(r.lo, r.hi, false)}`;
    case Kind.SINT64: {
      r.varint64();
      const z = big(r.lo, r.hi, false);
      unzigzag(r);
      return `sint64 ${big(r.lo, r.hi, true)} (zigzag ${z})`;
    }
    case Kind.BOOL:
      r.varint64();
      return `bool ${r.lo !== 0 || r.hi !== 0}`;
    case Kind.FIXED32:
      return `fixed32 ${r.fixed32()} (4 bytes little-endian)`;
    case Kind.SFIXED32:
      return `sfixed32 ${r.fixed32() | 0} (4 bytes little-endian)`;
    case Kind.FLOAT:
      return `float ${r.float()} (IEEE 754 single)`;
    case Kind.DOUBLE:
      return `double ${r.double()} (IEEE 754 double)`;
    case Kind.FIXED64:
      r.fixed64();
      return `fixed64 ${big(r.lo, r.hi, false)} (8 bytes little-endian)`;
    default:
      r.fixed64();
      return `sfixed64 ${big(r.lo, r.hi, true)} (8 bytes little-endian)`;
  }
}

/** A 64-bit value as decimal, exact even past 2^53. */
function big(lo: number, hi: number, signed: boolean): string {
  try {
    return String(signed ? int64ToNumber(lo, hi) : uint64ToNumber(lo, hi));
  } catch {
    const v = (BigInt(hi) << 32n) | BigInt(lo);
    return String(signed ? BigInt.asIntN(64, v) : v);
  }
}

/** A value read with nothing but its wire type to go on. */
function rawValue(r: Reader, wt: number, depth: number, rows: DumpRow[]): void {
  const at = r.pos;
  switch (wt) {
    case WireType.VARINT: {
      r.varint64();
      const u = big(r.lo, r.hi, false);
      const s = big(r.lo, r.hi, true);
      unzigzag(r);
      const z = big(r.lo, r.hi, true);
      push(rows, at, r, depth, `varint ${u}${s !== u ? ` (as int64 ${s})` : ""} (as sint ${z})`);
      return;
    }
    case WireType.I64: {
      r.fixed64();
      push(rows, at, r, depth, `i64 ${big(r.lo, r.hi, false)} (as double ${r.buf.readDoubleLE(at)})`);
      return;
    }
    case WireType.I32: {
      const u = r.fixed32();
      push(rows, at, r, depth, `i32 ${u} (as float ${r.buf.readFloatLE(at)})`);
      return;
    }
    case WireType.LEN: {
      const end = r.lengthEnd();
      push(rows, at, r, depth, `length ${end - r.pos}`);
      guessLen(r, end, depth, rows);
      return;
    }
    default:
      throw malformed(`wire type ${wt} at offset ${at} is not one proto3 uses`);
  }
}

/** LEN bytes without a schema: a message if they parse as one, else text, else bytes. */
function guessLen(r: Reader, end: number, depth: number, rows: DumpRow[]): void {
  const start = r.pos;
  if (end === start) return;
  const text = r.buf.toString("utf8", start, end);
  const printable = /^[\p{L}\p{N}\p{P}\p{S}\p{Zs}\t\n\r]*$/u.test(text) && !text.includes("\uFFFD");
  if (!printable && parsesAsMessage(r.buf.subarray(start, end))) {
    walk(r, end, undefined, depth + 1, rows);
    return;
  }
  r.pos = end;
  const varints = printable ? undefined : packedVarints(r.buf.subarray(start, end));
  if (printable) push(rows, start, r, depth + 1, `${JSON.stringify(text)} (looks like UTF-8 text)`);
  else if (varints) push(rows, start, r, depth + 1, `${end - start} bytes: packed varints? ${varints.join(", ")}`);
  else push(rows, start, r, depth + 1, `${end - start} bytes (not text, not a message)`);
}

function parsesAsMessage(bytes: Uint8Array): boolean {
  const r = new Reader(bytes);
  try {
    while (r.pos < r.end) {
      const tag = r.varint32();
      if (tag >>> 3 === 0) return false;
      r.skip(tag & 7);
      if (r.pos > r.end) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** Bytes that read as a run of varints (a packed list, perhaps), or undefined. */
function packedVarints(bytes: Uint8Array): string[] | undefined {
  const r = new Reader(bytes);
  const out: string[] = [];
  try {
    while (r.pos < r.end) {
      r.varint64();
      out.push(big(r.lo, r.hi, false));
    }
  } catch {
    return undefined;
  }
  return out.length <= 16 ? out : undefined;
}

/** Rows as text: offset, hex (16 bytes a line), and the meaning, indented by depth. */
export function formatDump(bytes: Uint8Array, rows: readonly DumpRow[], opts: { hexWidth?: number } = {}): string {
  const per = opts.hexWidth ?? 8;
  const col = per * 3;
  const lines: string[] = [];
  for (const row of rows) {
    const hex: string[] = [];
    for (let i = row.offset; i < row.offset + row.length; i++) hex.push(bytes[i]!.toString(16).padStart(2, "0"));
    const indent = "  ".repeat(row.depth);
    for (let i = 0; i === 0 || i < hex.length; i += per) {
      const chunk = hex.slice(i, i + per).join(" ").padEnd(col);
      const off = (row.offset + i).toString(16).padStart(4, "0");
      lines.push(i === 0 ? `${off}  ${chunk} ${indent}${row.text}` : `${off}  ${chunk}`);
    }
  }
  return lines.join("\n");
}

/** Parse "08 96 01", "089601" or "0x08,0x96" into bytes. */
export function parseHex(text: string): Buffer {
  const clean = text.replace(/0x/gi, "").replace(/[^0-9a-fA-F]/g, "");
  if (clean.length % 2 !== 0) throw new Error("hex input has an odd number of digits");
  return Buffer.from(clean, "hex");
}
