// The reference our codecs are held to: @bufbuild/protobuf (binary and proto3
// JSON), with message descriptors compiled from proto/ by buf — a different
// .proto compiler from the protobufjs parser our schema.ts uses, so the two
// sides share nothing but the .proto text. Plus fast-check generators for
// any message type, from its descriptor.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { create, createFileRegistry, fromBinary, ScalarType, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import type { DumpRow } from "../../src/rpc-demo/codecs/dump";
import { UNKNOWN_FIELDS } from "../../src/rpc-demo/codecs/protobuf-decode";
import { Kind, PROTO_DIR, type MessageSchema } from "../../src/rpc-demo/codecs/schema";

const ROOT = path.join(PROTO_DIR, "..");

/** Every .proto under proto/, compiled by buf into a registry of descriptors. */
export function referenceRegistry() {
  const set = execFileSync(path.join(ROOT, "node_modules", ".bin", "buf"), ["build", "--as-file-descriptor-set", "-o", "-"], { cwd: ROOT, maxBuffer: 64 << 20 });
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, set));
}

/** The message types declared in a file, nested ones included (map entries are not types of their own). */
export function messagesOf(file: { messages: DescMessage[] }): DescMessage[] {
  const out: DescMessage[] = [];
  const visit = (m: DescMessage) => {
    if (m.proto.options?.mapEntry) return;
    out.push(m);
    m.nestedMessages.forEach(visit);
  };
  file.messages.forEach(visit);
  return out;
}

type Obj = Record<string, unknown>;
type Unknown = { no: number; wireType: number; data: Uint8Array };
type RefMessage = Message & { $unknown?: Unknown[] };

// ---- generators ------------------------------------------------------------

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

function scalar(t: ScalarType, strings: fc.Arbitrary<string>): fc.Arbitrary<unknown> {
  switch (t) {
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return fc.oneof(fc.constantFrom(0, -1, 1, -0x80000000, 0x7fffffff), fc.integer({ min: -0x80000000, max: 0x7fffffff }));
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }));
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.oneof(
        fc.constantFrom(0n, -1n, 1n, I64_MIN, I64_MAX, 2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n) - 1n, 2n ** 32n, -(2n ** 31n)),
        fc.bigInt({ min: I64_MIN, max: I64_MAX }),
        fc.bigInt({ min: -1000n, max: 1000n }),
      );
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return fc.oneof(fc.constantFrom(0n, 1n, U64_MAX, I64_MAX, 2n ** 63n, 2n ** 53n + 1n), fc.bigInt({ min: 0n, max: U64_MAX }), fc.bigInt({ min: 0n, max: 1000n }));
    case ScalarType.FLOAT:
      return fc.oneof(fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 3.4028234663852886e38, -1.401298464324817e-45), fc.float());
    case ScalarType.DOUBLE:
      return fc.oneof(fc.constantFrom(0, -0, NaN, Infinity, -Infinity, Number.MAX_VALUE, -Number.MIN_VALUE, 0.1), fc.double());
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.STRING:
      return strings;
    case ScalarType.BYTES:
      return fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 40 }));
  }
}

/** Strings that survive a round trip: empty, ASCII, any Unicode (astral planes too), no lone surrogates. */
export const wellFormedStrings: fc.Arbitrary<string> = fc.oneof(
  fc.constant(""),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "grapheme", maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 12 }).filter((s) => Buffer.from(s, "utf8").toString("utf8") === s),
);

/** Any UTF-16 at all, lone surrogates included: both sides must write them as U+FFFD. */
export const anyStrings: fc.Arbitrary<string> = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 12 });

function singular(f: DescField, strings: fc.Arbitrary<string>, depth: number, unknown: boolean): fc.Arbitrary<unknown> {
  switch (f.fieldKind) {
    case "scalar":
      return scalar(f.scalar, strings);
    case "enum":
      return fc.oneof({ arbitrary: fc.constantFrom(...f.enum.values.map((v) => v.number)), weight: 4 }, { arbitrary: scalar(ScalarType.INT32, strings), weight: 1 });
    case "message":
      return messageArbitrary(f.message, { strings, depth: depth + 1, unknown });
    default:
      throw new Error(`not singular: ${f.name}`);
  }
}

/** A list: mostly short or empty, now and then long. */
function list<T>(elem: fc.Arbitrary<T>): fc.Arbitrary<T[]> {
  return fc.oneof({ arbitrary: fc.array(elem, { maxLength: 5 }), weight: 12 }, { arbitrary: fc.array(elem, { minLength: 50, maxLength: 150 }), weight: 1 });
}

function fieldArbitrary(f: DescField, strings: fc.Arbitrary<string>, depth: number, unknown: boolean): fc.Arbitrary<unknown> {
  switch (f.fieldKind) {
    case "list": {
      const elem =
        f.listKind === "scalar"
          ? scalar(f.scalar, strings)
          : f.listKind === "enum"
            ? fc.constantFrom(...f.enum.values.map((v) => v.number))
            : messageArbitrary(f.message, { strings, depth: depth + 1, unknown });
      return list(elem);
    }
    case "map": {
      const value = f.mapKind === "scalar" ? scalar(f.scalar, strings) : f.mapKind === "enum" ? fc.constantFrom(...f.enum.values.map((v) => v.number)) : messageArbitrary(f.message, { strings, depth: depth + 1, unknown });
      const key = scalar(f.mapKey, strings).map(String).filter((k) => k !== "__proto__");
      return fc.dictionary(key, value, { maxKeys: 4, noNullPrototype: true });
    }
    default:
      return singular(f, strings, depth, unknown);
  }
}

/** Fields the message does not declare, as raw wire data (what a newer sender would add). */
function unknownFields(desc: DescMessage): fc.Arbitrary<Unknown[]> {
  const varint = (v: bigint) => {
    const out: number[] = [];
    while (v > 0x7fn) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    return out;
  };
  const taken = new Set(desc.fields.map((f) => f.number));
  const field = fc.record({
    no: fc.integer({ min: 1, max: 2 ** 29 - 1 }).filter((n) => !taken.has(n) && (n < 19000 || n > 19999)),
    value: fc.oneof(
      fc.bigInt({ min: 0n, max: U64_MAX }).map((v) => ({ wireType: 0, data: varint(v) })),
      fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => ({ wireType: 1, data: [...b] })),
      fc.uint8Array({ maxLength: 20 }).map((b) => ({ wireType: 2, data: [...varint(BigInt(b.length)), ...b] })),
      fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => ({ wireType: 5, data: [...b] })),
    ),
  });
  return fc.array(field, { maxLength: 3 }).map((fs) => fs.map(({ no, value }) => ({ no, wireType: value.wireType, data: Uint8Array.from(value.data) })));
}

/** A field whose values are (or hold) messages. */
function hasMessage(f: DescField): boolean {
  return f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message") || (f.fieldKind === "map" && f.mapKind === "message");
}

/** Random messages of a type: each field absent, at its default or set, over its type's whole range. */
export function messageArbitrary(desc: DescMessage, opts: { strings?: fc.Arbitrary<string>; depth?: number; unknown?: boolean } = {}): fc.Arbitrary<RefMessage> {
  const strings = opts.strings ?? wellFormedStrings;
  const depth = opts.depth ?? 0;
  const unknown = opts.unknown ?? true;
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of desc.fields) {
    if (f.oneof) throw new Error(`${desc.typeName}: oneofs are not generated`);
    // Recursive types stop after a few levels.
    if (depth >= 3 && hasMessage(f)) continue;
    shape[f.localName] = fieldArbitrary(f, strings, depth, unknown);
  }
  return fc.tuple(fc.record(shape, { requiredKeys: [] }), unknown ? unknownFields(desc) : fc.constant([])).map(([init, extra]) => {
    const msg = create(desc, init as never) as RefMessage;
    if (extra.length > 0) msg.$unknown = [...extra];
    return msg;
  });
}

/** Dump rows must tile the bytes: in order, no gap, no overlap, every byte once. */
export function assertTiles(rows: readonly DumpRow[], length: number): void {
  let next = 0;
  for (const r of rows) {
    if (r.length === 0) continue;
    assert.equal(r.offset, next, `row "${r.text}" starts at ${r.offset}, expected ${next}`);
    next += r.length;
  }
  assert.equal(next, length, "every byte is shown");
}

// ---- between the reference's messages and ours ------------------------------

function tagBytes(no: number, wireType: number): number[] {
  const out: number[] = [];
  let v = ((no << 3) | wireType) >>> 0;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

/** The reference's message as the object our codec takes (ts-proto's shape, unknown fields as raw bytes). */
export function toOurs(desc: DescMessage, msg: RefMessage): Obj {
  const out: Obj = {};
  for (const f of desc.fields) {
    const v = (msg as unknown as Obj)[f.localName];
    if (f.fieldKind === "message") out[f.localName] = v === undefined ? undefined : toOurs(f.message, v as RefMessage);
    else if (f.fieldKind === "list" && f.listKind === "message") out[f.localName] = (v as RefMessage[]).map((e) => toOurs(f.message, e));
    else if (f.fieldKind === "map" && f.mapKind === "message") out[f.localName] = Object.fromEntries(Object.entries(v as Obj).map(([k, e]) => [k, toOurs(f.message, e as RefMessage)]));
    else out[f.localName] = v;
  }
  if (msg.$unknown?.length) {
    const raw = msg.$unknown.map((u) => Buffer.from([...tagBytes(u.no, u.wireType), ...u.data]));
    Object.defineProperty(out, UNKNOWN_FIELDS, { value: raw, enumerable: false, writable: true });
  }
  return out;
}

/** A plain, comparable form: keyed by field number, bytes and unknown fields as hex. */
export function normalizeRef(desc: DescMessage, msg: RefMessage): Obj {
  const out: Obj = {};
  for (const f of desc.fields) {
    const v = (msg as unknown as Obj)[f.localName];
    const sub = hasMessage(f) ? (m: unknown) => normalizeRef(f.message!, m as RefMessage) : undefined;
    out[f.number] = normField(v, f.fieldKind === "list", f.fieldKind === "map", sub);
  }
  out["unknown"] = (msg.$unknown ?? []).map((u) => Buffer.from([...tagBytes(u.no, u.wireType), ...u.data]).toString("hex"));
  return out;
}

export function normalizeOurs(schema: MessageSchema, msg: Obj): Obj {
  const out: Obj = {};
  for (const f of schema.fields) {
    const isMap = f.kind === Kind.MAP;
    const inner = isMap ? f.mapValue!.message : f.message;
    const sub = inner ? (m: unknown) => normalizeOurs(inner, m as Obj) : undefined;
    out[f.no] = normField(msg[f.jsName], f.repeated && !isMap, isMap, sub);
  }
  out["unknown"] = ((msg as { [UNKNOWN_FIELDS]?: Uint8Array[] })[UNKNOWN_FIELDS] ?? []).map((u) => Buffer.from(u).toString("hex"));
  return out;
}

function normField(v: unknown, isList: boolean, isMap: boolean, message: ((m: unknown) => Obj) | undefined): unknown {
  const one = (x: unknown) => (x === undefined ? undefined : message ? message(x) : x instanceof Uint8Array ? `bytes:${Buffer.from(x).toString("hex")}` : x);
  if (isList) return (v as unknown[]).map(one);
  if (isMap) return Object.fromEntries(Object.entries(v as Obj).map(([k, e]) => [k, one(e)]));
  return one(v);
}
