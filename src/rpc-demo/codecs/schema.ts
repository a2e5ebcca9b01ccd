/**
 * What the bytes mean: message schemas read from our .proto files.
 *
 * The wire format carries field numbers and wire types, never names or
 * exact types: a varint could be an int32, a bool, an enum or a zigzagged
 * sint64. The schema (the .proto file) is the shared knowledge that lets
 * both ends agree. Here each message becomes a small table of fields —
 * number, name, type, repeated/packed/map, and whether the field has
 * presence (is written even when zero) — that the codec and the dump walk.
 *
 * The .proto text is parsed by protobufjs; everything after parsing is ours.
 */
import * as path from "node:path";
import * as protobuf from "protobufjs";
import { WireType } from "./wire";

/** Field types, numbered as in google/protobuf/descriptor.proto; MAP is ours. */
export const Kind = {
  DOUBLE: 1,
  FLOAT: 2,
  INT64: 3,
  UINT64: 4,
  INT32: 5,
  FIXED64: 6,
  FIXED32: 7,
  BOOL: 8,
  STRING: 9,
  MESSAGE: 11,
  BYTES: 12,
  UINT32: 13,
  ENUM: 14,
  SFIXED32: 15,
  SFIXED64: 16,
  SINT32: 17,
  SINT64: 18,
  MAP: 100,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

const SCALARS: Record<string, Kind> = {
  double: Kind.DOUBLE,
  float: Kind.FLOAT,
  int64: Kind.INT64,
  uint64: Kind.UINT64,
  int32: Kind.INT32,
  fixed64: Kind.FIXED64,
  fixed32: Kind.FIXED32,
  bool: Kind.BOOL,
  string: Kind.STRING,
  bytes: Kind.BYTES,
  uint32: Kind.UINT32,
  sfixed32: Kind.SFIXED32,
  sfixed64: Kind.SFIXED64,
  sint32: Kind.SINT32,
  sint64: Kind.SINT64,
};

/** The integer kinds that are 64 bits wide: BigInt in messages, decimal strings in JSON. */
export function is64Bit(kind: Kind): boolean {
  return kind === Kind.INT64 || kind === Kind.UINT64 || kind === Kind.SINT64 || kind === Kind.FIXED64 || kind === Kind.SFIXED64;
}

export function wireTypeOf(kind: Kind): WireType {
  switch (kind) {
    case Kind.DOUBLE:
    case Kind.FIXED64:
    case Kind.SFIXED64:
      return WireType.I64;
    case Kind.FLOAT:
    case Kind.FIXED32:
    case Kind.SFIXED32:
      return WireType.I32;
    case Kind.STRING:
    case Kind.BYTES:
    case Kind.MESSAGE:
    case Kind.MAP:
      return WireType.LEN;
    default:
      return WireType.VARINT;
  }
}

export interface FieldSchema {
  readonly no: number;
  /** As in the .proto file: request_token. */
  readonly protoName: string;
  /** As in the ts-proto object: requestToken. */
  readonly jsName: string;
  /** As in proto3 JSON: requestToken (the json_name option, or the name in lowerCamelCase). */
  readonly jsonName: string;
  readonly kind: Kind;
  /** For people: "sint64", "Point", "map<string, string>". */
  readonly typeName: string;
  readonly repeated: boolean;
  /** Repeated numbers sent as one LEN field (the proto3 default). */
  readonly packed: boolean;
  /** In a oneof or marked optional: sent whenever set, even if zero. */
  readonly presence: boolean;
  /** The wire type of one value (VARINT for a packed int32 element). */
  readonly wireType: WireType;
  /** The tag as written: LEN for packed fields and maps. */
  readonly tag: number;
  readonly message: MessageSchema | undefined;
  /** For enums: number → name, and name → number (for JSON). */
  readonly enumValues: ReadonlyMap<number, string> | undefined;
  readonly enumNumbers: ReadonlyMap<string, number> | undefined;
  /** For maps: the entry's key (field 1) and value (field 2). */
  readonly mapKey: FieldSchema | undefined;
  readonly mapValue: FieldSchema | undefined;
}

export interface MessageSchema {
  readonly fullName: string;
  /** By field number: the order the binary encoding writes them. */
  readonly fields: readonly FieldSchema[];
  /** As declared in the .proto file: the order proto3 JSON writes them. */
  readonly declared: readonly FieldSchema[];
  readonly byNumber: ReadonlyMap<number, FieldSchema>;
  /** The same, as an array indexed by field number: the decoder's fast path. */
  readonly numbered: readonly (FieldSchema | undefined)[];
  readonly defaults: MessageDefaults;
}

/** A message with every field at its default, as ts-proto's createBase… makes it. */
export interface MessageDefaults {
  /** A new blank message: scalars at their default, message and oneof fields undefined, fresh [] and {}. */
  readonly make: () => Record<string, unknown>;
}

const EMPTY_BYTES = Buffer.alloc(0);

/** A field's default value (a fresh one for lists and maps). */
export function defaultValue(f: FieldSchema): unknown {
  if (f.kind === Kind.MAP) return {};
  if (f.repeated) return [];
  if (f.presence || f.kind === Kind.MESSAGE) return undefined;
  switch (f.kind) {
    case Kind.STRING:
      return "";
    case Kind.BOOL:
      return false;
    case Kind.BYTES:
      return EMPTY_BYTES;
    default:
      return is64Bit(f.kind) ? 0n : 0;
  }
}

/**
 * Whether proto3 writes a field: a value other than the default, or any
 * value for a field with presence (a message, a oneof member, `optional`).
 */
export function isSet(f: FieldSchema, v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (f.kind === Kind.MAP) {
    for (const _ in v as Record<string, unknown>) return true;
    return false;
  }
  if (f.repeated) return (v as unknown[]).length > 0;
  if (f.presence || f.kind === Kind.MESSAGE) return true;
  switch (typeof v) {
    case "number":
      return v !== 0 || ((f.kind === Kind.DOUBLE || f.kind === Kind.FLOAT) && Object.is(v, -0));
    case "bigint":
      return v !== 0n;
    case "string":
      return v !== "";
    case "boolean":
      return v;
    default:
      return (v as Uint8Array).length > 0;
  }
}

/**
 * A blank message comes from a tiny function built from the schema whose
 * body is one object literal, `() => ({ i32: 0, i64: 0n, text: "", … })`,
 * as ts-proto's generated createBase… is. V8 makes a literal object from a
 * prepared shape in one step; copying a template object field by field
 * (Object.assign) took ~400 ns for a blank Sample here, the literal ~50 ns,
 * and a blank message is made for every message decoded.
 */
function messageDefaults(fields: readonly FieldSchema[]): MessageDefaults {
  const literal = (f: FieldSchema): string => {
    if (f.kind === Kind.MAP) return "{}";
    if (f.repeated) return "[]";
    const v = defaultValue(f);
    return v === EMPTY_BYTES ? "EMPTY_BYTES" : typeof v === "bigint" ? `${v}n` : v === undefined ? "undefined" : JSON.stringify(v);
  };
  const body = fields.map((f) => `${JSON.stringify(f.jsName)}: ${literal(f)}`).join(", ");
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the source is built from field names, JSON-quoted
  const make = new Function("EMPTY_BYTES", `return () => ({ ${body} });`)(EMPTY_BYTES) as () => Record<string, unknown>;
  return { make };
}

/** Where our .proto files live, from dist/src/rpc-demo/codecs or src/rpc-demo/codecs. */
export const PROTO_DIR = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? "../../../../proto" : "../../../proto");

/** protoc's rule for a JSON name: drop each "_" and capitalise the letter after it. */
export function jsonNameOf(protoName: string): string {
  return protoName.replace(/_+(.?)/g, (_, c: string) => c.toUpperCase());
}

/** Same rule as ts-proto: only names with "_" change. */
export function jsNameOf(protoName: string): string {
  if (!protoName.includes("_")) return protoName;
  const hasLower = /[a-z]/.test(protoName);
  return protoName
    .split("_")
    .map((w, i) => {
      const word = hasLower ? w : w.toLowerCase();
      return i === 0 ? word : word.charAt(0).toUpperCase() + word.slice(1);
    })
    .join("");
}

/** All message schemas of a set of .proto files. */
export class SchemaSet {
  private readonly root: protobuf.Root;
  private readonly cache = new Map<string, MessageSchema>();

  constructor(files: string[]) {
    const root = new protobuf.Root();
    const bundled = path.dirname(require.resolve("protobufjs/package.json"));
    // google/protobuf/*.proto come with protobufjs; ours with the project.
    root.resolvePath = (origin, target) =>
      target.startsWith("google/protobuf/") ? path.join(bundled, target) : protobuf.util.path.resolve(origin, target);
    root.loadSync(files.map((f) => (path.isAbsolute(f) ? f : path.join(PROTO_DIR, f))), { keepCase: true });
    root.resolveAll();
    this.root = root;
  }

  /** The schema of a message by full name, e.g. "csi.v1.CreateVolumeRequest". */
  message(fullName: string): MessageSchema {
    const cached = this.cache.get(fullName);
    if (cached) return cached;
    return this.build(this.root.lookupType(fullName));
  }

  /** Every message type name in the set (for the dump's --type help). */
  messageNames(): string[] {
    const out: string[] = [];
    const walk = (ns: protobuf.NamespaceBase): void => {
      for (const child of ns.nestedArray) {
        if (child instanceof protobuf.Type) out.push(child.fullName.replace(/^\./, ""));
        if (child instanceof protobuf.Namespace || child instanceof protobuf.Type) walk(child);
      }
    };
    walk(this.root);
    return out.filter((n) => !n.startsWith("google."));
  }

  private build(type: protobuf.Type): MessageSchema {
    const fullName = type.fullName.replace(/^\./, "");
    const fields: FieldSchema[] = [];
    const byNumber = new Map<number, FieldSchema>();
    const numbered: (FieldSchema | undefined)[] = [];
    const declared: FieldSchema[] = [];
    const schema: { -readonly [K in keyof MessageSchema]: MessageSchema[K] } = { fullName, fields, declared, byNumber, numbered, defaults: messageDefaults([]) };
    this.cache.set(fullName, schema); // before the fields, so recursive types resolve
    for (const f of type.fieldsArray) declared.push(this.field(f));
    fields.push(...[...declared].sort((a, b) => a.no - b.no));
    for (const field of fields) {
      byNumber.set(field.no, field);
      // Field numbers can reach 2^29; only small ones get an array slot.
      if (field.no < 4096) numbered[field.no] = field;
    }
    schema.defaults = messageDefaults(fields);
    return schema;
  }

  private field(f: protobuf.Field): FieldSchema {
    const presence = f.partOf !== null && f.partOf !== undefined;
    const jsonName = (f.options?.["json_name"] as string | undefined) ?? jsonNameOf(f.name);
    if (f instanceof protobuf.MapField) {
      const key = this.entryField(1, "key", f.keyType, null);
      const value = this.entryField(2, "value", f.type, f.resolvedType);
      return {
        ...key,
        no: f.id,
        protoName: f.name,
        jsName: jsNameOf(f.name),
        jsonName,
        kind: Kind.MAP,
        typeName: `map<${key.typeName}, ${value.typeName}>`,
        repeated: true,
        packed: false,
        presence: false,
        wireType: WireType.LEN,
        tag: (f.id << 3) | WireType.LEN,
        mapKey: key,
        mapValue: value,
      };
    }
    const base = this.entryField(f.id, f.name, f.type, f.resolvedType);
    const packable = base.wireType !== WireType.LEN;
    const packed = f.repeated && packable && f.packed;
    return {
      ...base,
      jsonName,
      repeated: f.repeated,
      packed,
      presence,
      tag: (f.id << 3) | (packed ? WireType.LEN : base.wireType),
    };
  }

  private entryField(no: number, name: string, type: string, resolved: protobuf.Type | protobuf.Enum | null): FieldSchema {
    let kind: Kind;
    let message: MessageSchema | undefined;
    let enumValues: Map<number, string> | undefined;
    let enumNumbers: Map<string, number> | undefined;
    let typeName = type;
    if (resolved instanceof protobuf.Type) {
      kind = Kind.MESSAGE;
      message = this.message(resolved.fullName.replace(/^\./, ""));
      typeName = resolved.name;
    } else if (resolved instanceof protobuf.Enum) {
      kind = Kind.ENUM;
      // The first name of each number (an enum may give one number several names).
      enumValues = new Map([...Object.entries(resolved.values)].reverse().map(([k, v]) => [v, k]));
      enumNumbers = new Map(Object.entries(resolved.values));
      typeName = resolved.name;
    } else {
      const scalar = SCALARS[type];
      if (scalar === undefined) throw new Error(`field ${name}: unknown type ${type}`);
      kind = scalar;
    }
    const wireType = wireTypeOf(kind);
    return {
      no,
      protoName: name,
      jsName: jsNameOf(name),
      jsonName: jsonNameOf(name),
      kind,
      typeName,
      repeated: false,
      packed: false,
      presence: false,
      wireType,
      tag: (no << 3) | wireType,
      message,
      enumValues,
      enumNumbers,
      mapKey: undefined,
      mapValue: undefined,
    };
  }
}

let shared: SchemaSet | undefined;

/** The playground's and the CSI driver's messages, loaded once. */
export function schemas(): SchemaSet {
  shared ??= new SchemaSet(["rpc-demo.proto", "csi.proto"]);
  return shared;
}
