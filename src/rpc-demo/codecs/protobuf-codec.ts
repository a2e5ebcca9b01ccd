/**
 * Our own Protocol Buffers codec: message objects ⇄ wire bytes.
 *
 * Encoding runs in two passes. A nested message, a string or a packed list
 * is written as LEN: its byte count comes before its bytes, so the count
 * must be known first. Pass one measures every message and string and notes
 * each length in a list, in the order the writer will need them; pass two
 * allocates exactly one buffer and writes straight into it.
 *
 * proto3 leaves out fields that hold their default (0, "", false, empty),
 * unless the field has presence (oneof, `optional`). A float or double -0
 * is not the default: its bits differ from 0's, so it is written. 64-bit
 * integers are BigInts, checked against their field's range like every
 * integer: a value that does not fit is refused, never wrapped around. Fields the schema does
 * not know are kept as raw bytes on decode and written back on encode, so a
 * message passing through an older program loses nothing.
 *
 * The objects are the ones ts-proto generates (src/gen), and the bytes must
 * match its output exactly; test/rpc-demo checks that with random messages.
 */
import { readMessage, unknownFieldsOf } from "./protobuf-decode";
import { checkInteger } from "./ranges";
import { defaultValue, isSet, Kind, type FieldSchema, type MessageSchema } from "./schema";
import { Reader, split, splitInt64, utf8Length, varint32Size, varint64Size, Writer, zigzagSplit } from "./wire";

type Obj = Record<string, unknown>;

export { UNKNOWN_FIELDS, unknownFieldsOf } from "./protobuf-decode";

export function encode<T extends object>(schema: MessageSchema, msg: T): Buffer {
  const sizes: number[] = [];
  const size = measure(schema, msg as Obj, sizes);
  const w = new Writer(size);
  writeMessage(schema, msg as Obj, w, sizes, { next: 0 });
  return w.buf;
}

export function decode<T extends object>(schema: MessageSchema, bytes: Uint8Array): T {
  const r = new Reader(bytes);
  return readMessage(schema, r, r.end) as T;
}

// ---- pass one: measure ---------------------------------------------------

function measure(schema: MessageSchema, msg: Obj, sizes: number[]): number {
  let total = 0;
  for (const f of schema.fields) {
    const v = msg[f.jsName];
    if (!isSet(f, v)) continue;
    const tagSize = varint32Size(f.tag);
    if (f.kind === Kind.MAP) {
      for (const [k, val] of Object.entries(v as Obj)) {
        const slot = sizes.push(0) - 1;
        const n = entrySize(f, k, val, sizes);
        sizes[slot] = n;
        total += tagSize + varint32Size(n) + n;
      }
    } else if (f.packed) {
      let n = 0;
      for (const e of v as unknown[]) n += valueSize(f, e, sizes);
      total += tagSize + varint32Size(n) + n;
    } else if (f.repeated) {
      for (const e of v as unknown[]) total += tagSize + valueSize(f, e, sizes);
    } else {
      total += tagSize + valueSize(f, v, sizes);
    }
  }
  for (const u of unknownFieldsOf(msg)) total += u.length;
  return total;
}

function entrySize(f: FieldSchema, key: string, value: unknown, sizes: number[]): number {
  const k = f.mapKey!;
  const val = f.mapValue!;
  const keyValue = mapKeyValue(k, key);
  // Key and value are written even when they hold their default, as the
  // reference implementations do (a reader must accept them left out too).
  return varint32Size(k.tag) + valueSize(k, keyValue, sizes) + varint32Size(val.tag) + valueSize(val, value ?? defaultMapValue(val), sizes);
}

/** A map value that is missing: an empty message, or the type's zero. */
function defaultMapValue(f: FieldSchema): unknown {
  return f.kind === Kind.MESSAGE ? {} : defaultValue(f);
}

/** Map keys arrive as object keys (strings); give them their real type. */
function mapKeyValue(k: FieldSchema, key: string): unknown {
  if (k.kind === Kind.STRING) return key;
  if (k.kind === Kind.BOOL) return key === "true";
  if (/^-?\d+$/.test(key)) return k.kind === Kind.INT32 || k.kind === Kind.UINT32 || k.kind === Kind.SINT32 || k.kind === Kind.FIXED32 || k.kind === Kind.SFIXED32 ? Number(key) : BigInt(key);
  return key; // refused by the range check
}

/** Bytes of one value, without its tag. Lengths of LEN values are noted. */
function valueSize(f: FieldSchema, v: unknown, sizes: number[]): number {
  switch (f.kind) {
    case Kind.STRING: {
      const n = utf8Length(v as string);
      sizes.push(n);
      return varint32Size(n) + n;
    }
    case Kind.BYTES: {
      const n = (v as Uint8Array).length;
      return varint32Size(n) + n;
    }
    case Kind.MESSAGE: {
      const slot = sizes.push(0) - 1;
      const n = measure(f.message!, v as Obj, sizes);
      sizes[slot] = n;
      return varint32Size(n) + n;
    }
    case Kind.INT32:
    case Kind.ENUM:
      if (((v as number) | 0) !== v) checkInteger(f, v);
      return (v as number) >= 0 ? varint32Size(v as number) : 10;
    case Kind.UINT32:
      if ((v as number) >>> 0 !== v) checkInteger(f, v);
      return varint32Size(v as number);
    case Kind.SINT32:
      if (((v as number) | 0) !== v) checkInteger(f, v);
      return varint32Size(((v as number) << 1) ^ ((v as number) >> 31));
    case Kind.INT64:
    case Kind.UINT64:
      checkInteger(f, v);
      splitInt64(v as bigint);
      return varint64Size(split.lo, split.hi);
    case Kind.SINT64:
      checkInteger(f, v);
      splitInt64(v as bigint);
      zigzagSplit();
      return varint64Size(split.lo, split.hi);
    case Kind.BOOL:
      return 1;
    case Kind.FIXED32:
      if ((v as number) >>> 0 !== v) checkInteger(f, v);
      return 4;
    case Kind.SFIXED32:
      if (((v as number) | 0) !== v) checkInteger(f, v);
      return 4;
    case Kind.FLOAT:
      return 4;
    case Kind.DOUBLE:
      return 8;
    default: // FIXED64, SFIXED64
      checkInteger(f, v);
      return 8;
  }
}

// ---- pass two: write -----------------------------------------------------

interface Cursor {
  next: number;
}

function writeMessage(schema: MessageSchema, msg: Obj, w: Writer, sizes: number[], c: Cursor): void {
  for (const f of schema.fields) {
    const v = msg[f.jsName];
    if (!isSet(f, v)) continue;
    if (f.kind === Kind.MAP) {
      for (const [k, val] of Object.entries(v as Obj)) {
        w.varint32(f.tag);
        w.varint32(sizes[c.next++]!);
        w.varint32(f.mapKey!.tag);
        writeValue(f.mapKey!, mapKeyValue(f.mapKey!, k), w, sizes, c);
        w.varint32(f.mapValue!.tag);
        writeValue(f.mapValue!, val ?? defaultMapValue(f.mapValue!), w, sizes, c);
      }
    } else if (f.packed) {
      // Packed elements are fixed-size or varints: no slots were used, so
      // measuring again here costs little.
      let n = 0;
      for (const e of v as unknown[]) n += valueSize(f, e, sizes);
      w.varint32(f.tag);
      w.varint32(n);
      for (const e of v as unknown[]) writeValue(f, e, w, sizes, c);
    } else if (f.repeated) {
      for (const e of v as unknown[]) {
        w.varint32(f.tag);
        writeValue(f, e, w, sizes, c);
      }
    } else {
      w.varint32(f.tag);
      writeValue(f, v, w, sizes, c);
    }
  }
  for (const u of unknownFieldsOf(msg)) w.raw(u);
}

function writeValue(f: FieldSchema, v: unknown, w: Writer, sizes: number[], c: Cursor): void {
  switch (f.kind) {
    case Kind.STRING:
      w.string(v as string, sizes[c.next++]!);
      return;
    case Kind.BYTES:
      w.bytes(v as Uint8Array);
      return;
    case Kind.MESSAGE:
      w.varint32(sizes[c.next++]!);
      writeMessage(f.message!, v as Obj, w, sizes, c);
      return;
    case Kind.INT32:
    case Kind.ENUM:
      w.int32(v as number);
      return;
    case Kind.UINT32:
      w.varint32(v as number);
      return;
    case Kind.SINT32:
      w.varint32(((v as number) << 1) ^ ((v as number) >> 31));
      return;
    case Kind.INT64:
    case Kind.UINT64:
      splitInt64(v as bigint);
      w.varint64(split.lo, split.hi);
      return;
    case Kind.SINT64:
      splitInt64(v as bigint);
      zigzagSplit();
      w.varint64(split.lo, split.hi);
      return;
    case Kind.BOOL:
      w.varint32(v ? 1 : 0);
      return;
    case Kind.FIXED32:
    case Kind.SFIXED32:
      w.fixed32(v as number);
      return;
    case Kind.FLOAT:
      w.float(v as number);
      return;
    case Kind.DOUBLE:
      w.double(v as number);
      return;
    default: // FIXED64, SFIXED64
      splitInt64(v as bigint);
      w.fixed64(split.lo, split.hi);
  }
}
