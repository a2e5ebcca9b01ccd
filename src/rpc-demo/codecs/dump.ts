/**
 * An annotated byte dump: which bytes carry which field.
 *
 * Every byte is shown exactly once, at its offset, in order: each field's
 * tag (field number and wire type), then for a LEN field its length prefix
 * and then its payload, for other fields the value. Nested messages, map
 * entries and packed lists are LEN payloads too: their length prefix has a
 * row of its own and their insides follow, indented.
 *
 * Given a schema, the dump names fields and reads values with their real
 * type (a zigzagged sint64, an enum's name). Without one it does what a
 * reader without the .proto can do: the wire types still say how long each
 * value is, so it can walk the whole message, show varints as numbers and
 * guess whether LEN bytes are a nested message, text or opaque bytes. This
 * is also what makes unknown fields skippable.
 *
 * Bytes that are not valid protobuf get a row saying where the reading
 * failed and what was expected there; the bytes after that point are shown
 * as not read.
 */
import { Kind, type FieldSchema, type MessageSchema } from "./schema";
import { int64FromHalves, WIRE_TYPE_NAMES, WireType } from "./wire";

export interface DumpRow {
  readonly offset: number;
  readonly length: number;
  /** Nesting depth: 0 for the top message's fields. */
  readonly depth: number;
  readonly text: string;
  /** What the bytes are: a field's tag, a length prefix, a value (or a packed one), or not protobuf. */
  readonly kind: "tag" | "length" | "value" | "error";
  /** The whole field these bytes belong to, tag to last byte of its value (absent for error rows). */
  readonly field?: { readonly offset: number; readonly length: number };
  /** The bytes are not valid protobuf (this row says why) or were not read. */
  readonly error?: boolean;
}

type RowKind = DumpRow["kind"];

/**
 * Where the bytes stop being protobuf: the bad item's own bytes, and what was
 * expected. Thrown and caught inside this module only; not an Error, because
 * guessing whether bytes are a message throws many and a stack trace for
 * each would cost more than the walk.
 */
class Problem {
  constructor(
    readonly at: number,
    readonly length: number,
    readonly depth: number,
    readonly what: string,
  ) {}
}

/** "7", or "26 (0x1a)" where the hex offset in the left column differs. */
export function offsetText(n: number): string {
  return n < 10 ? String(n) : `${n} (0x${n.toString(16)})`;
}

/** Annotate a message's bytes. Without a schema the fields are guessed from the wire. */
export function dumpMessage(bytes: Uint8Array, schema?: MessageSchema): DumpRow[] {
  const d = new Dumper(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  try {
    d.walk(d.buf.length, schema, 0, "the message");
  } catch (err) {
    if (!(err instanceof Problem)) throw err;
    d.rows.push({ offset: err.at, length: err.length, depth: err.depth, text: `✗ at offset ${offsetText(err.at)}: ${err.what}`, kind: "error", error: true });
    const rest = err.at + err.length;
    if (rest < d.buf.length) {
      d.rows.push({ offset: rest, length: d.buf.length - rest, depth: 0, text: `✗ not read: ${d.buf.length - rest} byte${d.buf.length - rest === 1 ? "" : "s"} after the error`, kind: "error", error: true });
    }
  }
  return d.rows;
}

/** The first error row's text, or undefined when the bytes are valid protobuf. */
export function dumpError(rows: readonly DumpRow[]): string | undefined {
  return rows.find((r) => r.error)?.text.replace(/^✗ /, "");
}

class Dumper {
  readonly rows: { -readonly [K in keyof DumpRow]: DumpRow[K] }[] = [];
  pos = 0;
  /** Set by varint(). */
  lo = 0;
  hi = 0;

  constructor(readonly buf: Buffer) {}

  private row(offset: number, depth: number, text: string, kind: RowKind = "value"): void {
    this.rows.push({ offset, length: this.pos - offset, depth, text, kind });
  }

  /** A field ended: its rows not already claimed by a field nested in it belong to it. */
  private fieldEnds(firstRow: number, offset: number): void {
    const field = { offset, length: this.pos - offset };
    for (let i = firstRow; i < this.rows.length; i++) this.rows[i]!.field ??= field;
  }

  /** The fields of one message, up to `limit` (the end of its bytes), described as `whose`. */
  walk(limit: number, schema: MessageSchema | undefined, depth: number, whose: string): void {
    while (this.pos < limit) {
      const start = this.pos;
      this.varint(limit, depth, `a tag (a varint) inside ${whose}`);
      if (this.hi !== 0) throw new Problem(start, this.pos - start, depth, "a tag larger than 32 bits: field numbers end at 2^29 − 1");
      const no = this.lo >>> 3;
      const wt = this.lo & 7;
      if (no === 0) throw new Problem(start, this.pos - start, depth, "field number 0: not a valid tag (field numbers start at 1)");
      if (wt !== WireType.VARINT && wt !== WireType.I64 && wt !== WireType.LEN && wt !== WireType.I32) {
        const why = wt === WireType.SGROUP || wt === WireType.EGROUP ? "proto2's groups, which proto3 does not use" : "no such wire type";
        throw new Problem(start, this.pos - start, depth, `tag of field ${no} with wire type ${wt} ${WIRE_TYPE_NAMES[wt]}: ${why}; a reader cannot tell how long the value is`);
      }
      const f = schema?.byNumber.get(no);
      const fits = f !== undefined && (wt === f.wireType || (f.repeated && f.wireType !== WireType.LEN && wt === WireType.LEN));
      const who = f ? `${no} ${f.protoName}` : `${no}`;
      const what = f ? (fits ? f.typeName : `${f.typeName}, but the wire type does not fit: kept as unknown`) : schema ? "unknown field: kept as is" : "";
      const firstRow = this.rows.length;
      this.row(start, depth, `tag: field ${who}, wire type ${wt} ${WIRE_TYPE_NAMES[wt]}${what ? ` (${what})` : ""}`, "tag");
      const field = `field ${no}${f ? ` (${f.protoName})` : ""}`;
      if (wt === WireType.LEN) {
        const end = this.lengthPrefix(limit, depth, field, whose);
        if (f && fits) this.typedLen(f, end, depth);
        else this.guessLen(end, depth);
      } else if (f && fits) this.typedScalar(f, limit, depth, field);
      else this.rawScalar(wt, limit, depth, field);
      this.fieldEnds(firstRow, start);
    }
  }

  /** Reads a varint into lo/hi, within limit. */
  private varint(limit: number, depth: number, what: string): void {
    const start = this.pos;
    let lo = 0;
    let hi = 0;
    for (let i = 0; ; i++) {
      if (this.pos >= limit) {
        const why = i === 0 ? "nothing is left" : "its last byte has the top bit set (more follows), but nothing does";
        throw new Problem(start, this.pos - start, depth, `expected ${what}: ${why}`);
      }
      const b = this.buf[this.pos++]!;
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi = (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (b < 0x80) break;
      if (i === 9) throw new Problem(start, this.pos - start, depth, `expected ${what}: a varint is at most 10 bytes long`);
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  /** A LEN field's length prefix: one row, and where its payload ends. */
  private lengthPrefix(limit: number, depth: number, field: string, whose: string): number {
    const at = this.pos;
    this.varint(limit, depth, `the length of ${field}`);
    const n = this.hi === 0 ? this.lo : Infinity;
    if (this.pos + n > limit) {
      const left = limit - this.pos;
      throw new Problem(at, this.pos - at, depth, `length ${n === Infinity ? "≥ 2^32" : n} of ${field}, but only ${left} byte${left === 1 ? "" : "s"} follow before the end of ${whose} at offset ${offsetText(limit)}`);
    }
    this.row(at, depth, `length ${n}`, "length");
    return this.pos + n;
  }

  private need(n: number, limit: number, depth: number, what: string): void {
    if (this.pos + n > limit) {
      const left = limit - this.pos;
      throw new Problem(this.pos, left, depth, `expected ${what}: ${n} bytes, but only ${left} are left before offset ${offsetText(limit)}`);
    }
  }

  /** The payload of a LEN field the schema knows. */
  private typedLen(f: FieldSchema, end: number, depth: number): void {
    const at = this.pos;
    if (at === end) return; // an empty payload: no bytes to show
    switch (f.kind) {
      case Kind.STRING: {
        const text = this.buf.toString("utf8", at, end);
        this.pos = end;
        this.row(at, depth + 1, `${JSON.stringify(text)} (UTF-8${text.includes("\uFFFD") ? ", with bytes that are not UTF-8 shown as �" : ""})`);
        return;
      }
      case Kind.BYTES:
        this.pos = end;
        this.row(at, depth + 1, `${end - at} raw bytes`);
        return;
      case Kind.MESSAGE:
        this.walk(end, f.message, depth + 1, `the ${f.typeName} of field ${f.no} (${f.protoName}), which ends at offset ${offsetText(end)}`);
        return;
      case Kind.MAP:
        this.walk(end, entrySchema(f), depth + 1, `an entry of map ${f.protoName}, which ends at offset ${offsetText(end)}`);
        return;
      default:
        // packed: values back to back, no tags
        while (this.pos < end) this.typedScalar(f, end, depth + 1, `a packed ${f.typeName} of field ${f.no} (${f.protoName})`);
    }
  }

  /** One value of a known non-LEN type. */
  private typedScalar(f: FieldSchema, limit: number, depth: number, field: string): void {
    const at = this.pos;
    const text = this.scalarText(f, limit, depth, field);
    this.row(at, depth, text);
  }

  private scalarText(f: FieldSchema, limit: number, depth: number, field: string): string {
    const buf = this.buf;
    const varint = () => this.varint(limit, depth, `the value of ${field} (a varint)`);
    const fixed = (n: number) => {
      this.need(n, limit, depth, `the value of ${field}`);
      this.pos += n;
      return this.pos - n;
    };
    switch (f.kind) {
      case Kind.INT32:
        varint();
        return `int32 ${this.lo | 0}`;
      case Kind.ENUM: {
        varint();
        const v = this.lo | 0;
        return `enum ${f.enumValues?.get(v) ?? "(a number this schema has no name for)"} = ${v}`;
      }
      case Kind.UINT32:
        varint();
        return `uint32 ${this.lo}`;
      case Kind.SINT32:
        varint();
        return `sint32 ${(this.lo >>> 1) ^ -(this.lo & 1)} (zigzag ${this.lo})`;
      case Kind.INT64:
        varint();
        return `int64 ${int64FromHalves(this.lo, this.hi, true)}`;
      case Kind.UINT64:
        varint();
        return `uint64 ${int64FromHalves(this.lo, this.hi, false)}`;
      case Kind.SINT64: {
        varint();
        const z = int64FromHalves(this.lo, this.hi, false);
        return `sint64 ${(z >> 1n) ^ -(z & 1n)} (zigzag ${z})`;
      }
      case Kind.BOOL:
        varint();
        return `bool ${this.lo !== 0 || this.hi !== 0}`;
      case Kind.FIXED32:
        return `fixed32 ${buf.readUInt32LE(fixed(4))} (4 bytes little-endian)`;
      case Kind.SFIXED32:
        return `sfixed32 ${buf.readInt32LE(fixed(4))} (4 bytes little-endian)`;
      case Kind.FLOAT:
        return `float ${numberText(buf.readFloatLE(fixed(4)))} (IEEE 754 single)`;
      case Kind.DOUBLE:
        return `double ${numberText(buf.readDoubleLE(fixed(8)))} (IEEE 754 double)`;
      case Kind.FIXED64:
        return `fixed64 ${buf.readBigUInt64LE(fixed(8))} (8 bytes little-endian)`;
      default:
        return `sfixed64 ${buf.readBigInt64LE(fixed(8))} (8 bytes little-endian)`;
    }
  }

  /** A non-LEN value read with nothing but its wire type to go on. */
  private rawScalar(wt: number, limit: number, depth: number, field: string): void {
    const at = this.pos;
    if (wt === WireType.VARINT) {
      this.varint(limit, depth, `the value of ${field} (a varint)`);
      const u = int64FromHalves(this.lo, this.hi, false);
      const s = BigInt.asIntN(64, u);
      this.row(at, depth, `varint ${u}${s !== u ? ` (as int64 ${s})` : ""} (as sint ${(u >> 1n) ^ -(u & 1n)})`);
      return;
    }
    const n = wt === WireType.I64 ? 8 : 4;
    this.need(n, limit, depth, `the value of ${field} (${WIRE_TYPE_NAMES[wt]})`);
    this.pos += n;
    this.row(
      at,
      depth,
      n === 8
        ? `i64 ${this.buf.readBigUInt64LE(at)} (as double ${numberText(this.buf.readDoubleLE(at))})`
        : `i32 ${this.buf.readUInt32LE(at)} (as float ${numberText(this.buf.readFloatLE(at))})`,
    );
  }

  /** LEN bytes without a schema: text if they look like it, else a message if they parse as one, else bytes. */
  private guessLen(end: number, depth: number): void {
    const start = this.pos;
    if (end === start) return;
    const text = this.buf.toString("utf8", start, end);
    const printable = /^[\p{L}\p{N}\p{P}\p{S}\p{Zs}\t\n\r]*$/u.test(text) && !text.includes("\uFFFD");
    if (printable) {
      this.pos = end;
      this.row(start, depth + 1, `${JSON.stringify(text)} (looks like UTF-8 text)`);
      return;
    }
    if (parsesAsMessage(this.buf.subarray(start, end))) {
      this.walk(end, undefined, depth + 1, `the message guessed at offset ${offsetText(start)}`);
      return;
    }
    this.pos = end;
    const varints = packedVarints(this.buf.subarray(start, end));
    this.row(start, depth + 1, varints ? `${end - start} bytes: packed varints? ${varints.join(", ")}` : `${end - start} bytes (not text, not a message)`);
  }
}

/** The same walk, on a copy: true when the bytes are a message to the end. */
function parsesAsMessage(bytes: Buffer): boolean {
  const d = new Dumper(bytes);
  try {
    d.walk(bytes.length, undefined, 0, "");
    return true;
  } catch (err) {
    if (err instanceof Problem) return false;
    throw err;
  }
}

/** Bytes that read as a run of varints (a packed list, perhaps), or undefined. */
function packedVarints(bytes: Buffer): string[] | undefined {
  const out: string[] = [];
  let v = 0n;
  let shift = 0n;
  for (const b of bytes) {
    v |= BigInt(b & 0x7f) << shift;
    shift += 7n;
    if (shift > 70n) return undefined;
    if (b < 0x80) {
      out.push(BigInt.asUintN(64, v).toString());
      v = 0n;
      shift = 0n;
    }
  }
  return shift === 0n && out.length <= 16 ? out : undefined;
}

function numberText(n: number): string {
  return Object.is(n, -0) ? "-0" : String(n);
}

function entrySchema(f: FieldSchema): MessageSchema {
  const k = { ...f.mapKey!, protoName: "key" };
  const v = { ...f.mapValue!, protoName: "value" };
  return {
    fullName: `${f.protoName} entry`,
    fields: [k, v],
    declared: [k, v],
    byNumber: new Map([
      [1, k],
      [2, v],
    ]),
    numbered: [undefined, k, v],
    defaults: { make: () => ({}) },
  };
}

/** Rows as text: offset, hex (8 bytes a line), and the meaning, indented by depth. */
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

/**
 * Bytes from hex text: "08 96 01", "089601", "0x08,0x96", "08:96:01".
 * Anything else is an error naming the first character that is not hex.
 */
export function parseHex(text: string): Buffer {
  const clean = text.replace(/0x/gi, "").replace(/[\s,:]+/g, "");
  const bad = /[^0-9a-fA-F]/.exec(clean);
  if (bad) throw new Error(`not hex: ${JSON.stringify(bad[0])} (use the digits 0-9 and a-f, e.g. 08 96 01)`);
  if (clean.length === 0) throw new Error("no bytes given: pass hex digits, e.g. 08 96 01, or - to read them from stdin");
  if (clean.length % 2 !== 0) throw new Error(`hex input has an odd number of digits (${clean.length}): each byte takes two`);
  return Buffer.from(clean, "hex");
}
