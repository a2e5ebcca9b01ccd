/**
 * Decoding: wire bytes → the objects ts-proto generates.
 *
 * The reader walks the fields in the order they arrive (any order is
 * legal), finds each by number in the schema and reads its value by the
 * field's declared type; the wire type alone only says how many bytes to
 * take. A field the schema does not know, or one whose wire type does not
 * fit its declaration, is kept as raw bytes so an encoder can send it on.
 * Repeated numbers are accepted both packed and one per tag, as the
 * protobuf spec asks of every reader.
 */
import { defaultValue, Kind, type FieldSchema, type MessageSchema } from "./schema";
import { int64FromHalves, Reader, unzigzag, malformed, WireType } from "./wire";

type Obj = Record<string, unknown>;

/** Where a decoded message keeps the fields its schema did not know. */
export const UNKNOWN_FIELDS: unique symbol = Symbol("protobuf unknown fields");

/** The raw bytes (tag included) of each unknown field, in arrival order. */
export function unknownFieldsOf(msg: object): readonly Uint8Array[] {
  return (msg as { [UNKNOWN_FIELDS]?: Uint8Array[] })[UNKNOWN_FIELDS] ?? [];
}

/** A message with every field at its default, as ts-proto's createBase… makes it. */
function blank(schema: MessageSchema): Obj {
  return schema.defaults.make();
}

export function readMessage(schema: MessageSchema, r: Reader, end: number): Obj {
  const msg = blank(schema);
  let unknown: Uint8Array[] | undefined;
  while (r.pos < end) {
    const start = r.pos;
    const tag = r.varint32();
    const no = tag >>> 3;
    const wireType = tag & 7;
    if (no === 0) throw malformed(`field number 0 at offset ${start} is not allowed`);
    const f = no < 4096 ? schema.numbered[no] : schema.byNumber.get(no);
    if (f !== undefined && wireType === f.wireType && !f.repeated) {
      // the common case: a singular field, as declared
      msg[f.jsName] = f.kind === Kind.MESSAGE ? readMessage(f.message!, r, r.lengthEnd()) : readValue(f, r);
    } else if (f === undefined || !readField(f, wireType, msg, r)) {
      r.skip(wireType);
      (unknown ??= []).push(r.buf.subarray(start, r.pos));
    }
    if (r.pos > end) throw malformed(`field ${no} at offset ${start} runs past the end of its message`);
  }
  if (unknown) Object.defineProperty(msg, UNKNOWN_FIELDS, { value: unknown, enumerable: false, writable: true });
  return msg;
}

/** Reads a known field into msg; false if its wire type does not fit (kept as unknown). */
function readField(f: FieldSchema, wireType: number, msg: Obj, r: Reader): boolean {
  if (f.kind === Kind.MAP) {
    if (wireType !== WireType.LEN) return false;
    const end = r.lengthEnd();
    let key: unknown = defaultValue(f.mapKey!);
    // An entry may leave out its key or value: they take their defaults.
    let value: unknown = f.mapValue!.kind === Kind.MESSAGE ? blank(f.mapValue!.message!) : defaultValue(f.mapValue!);
    while (r.pos < end) {
      const tag = r.varint32();
      if (tag === f.mapKey!.tag) key = readValue(f.mapKey!, r);
      else if (tag === f.mapValue!.tag) value = readValue(f.mapValue!, r);
      else r.skip(tag & 7);
    }
    if (r.pos !== end) throw malformed(`an entry of map ${f.protoName} overruns its length`);
    (msg[f.jsName] as Obj)[String(key)] = value;
    return true;
  }
  if (f.repeated) {
    const list = msg[f.jsName] as unknown[];
    if (wireType === f.wireType) {
      list.push(readValue(f, r));
      return true;
    }
    // A packed list; accepted even when the schema says unpacked.
    if (wireType === WireType.LEN && f.wireType !== WireType.LEN) {
      const end = r.lengthEnd();
      while (r.pos < end) list.push(readValue(f, r));
      if (r.pos !== end) throw malformed(`packed field ${f.protoName} overruns its length`);
      return true;
    }
    return false;
  }
  if (wireType !== f.wireType) return false;
  if (f.kind === Kind.MESSAGE) {
    // A message field seen twice is merged; ours just keeps the last.
    const end = r.lengthEnd();
    msg[f.jsName] = readMessage(f.message!, r, end);
    return true;
  }
  msg[f.jsName] = readValue(f, r);
  return true;
}

function readValue(f: FieldSchema, r: Reader): unknown {
  switch (f.kind) {
    case Kind.STRING:
      return r.string();
    case Kind.BYTES:
      return r.bytes();
    case Kind.MESSAGE: {
      const end = r.lengthEnd();
      return readMessage(f.message!, r, end);
    }
    case Kind.INT32:
    case Kind.ENUM:
      return r.varint32() | 0;
    case Kind.UINT32:
      return r.varint32();
    case Kind.SINT32: {
      const z = r.varint32();
      return (z >>> 1) ^ -(z & 1);
    }
    case Kind.INT64:
      r.varint64();
      return int64FromHalves(r.lo, r.hi, true);
    case Kind.UINT64:
      r.varint64();
      return int64FromHalves(r.lo, r.hi, false);
    case Kind.SINT64:
      r.varint64();
      unzigzag(r);
      return int64FromHalves(r.lo, r.hi, true);
    case Kind.BOOL:
      r.varint64();
      return r.lo !== 0 || r.hi !== 0;
    case Kind.FIXED32:
      return r.fixed32();
    case Kind.SFIXED32:
      return r.fixed32() | 0;
    case Kind.FLOAT:
      return r.float();
    case Kind.DOUBLE:
      return r.double();
    case Kind.FIXED64:
      r.fixed64();
      return int64FromHalves(r.lo, r.hi, false);
    default: // SFIXED64
      r.fixed64();
      return int64FromHalves(r.lo, r.hi, true);
  }
}
