/**
 * Serialization: how parameters become bytes.
 *
 * A codec turns a message object into bytes on one side and back on the
 * other. Both ends must pick the same codec and the same message type, and
 * nothing in the bytes says which: the call ID implies the types, and the
 * transport says the codec (a content-type header, or a byte in our own
 * call header).
 *
 *   protobuf  our hand-written codec (protobuf-codec.ts): compact, binary,
 *             needs the schema to make sense of the bytes.
 *   json      text: readable on the wire, several times larger, and numbers
 *             and bytes need conventions: the proto3 JSON mapping
 *             (json-codec.ts, also ours, as strict as protobuf about types).
 *   ts-proto  the generated code, used as the reference our codec must match
 *             and as the yardstick in the benchmark.
 */
import { fromJson, parseJsonText, toJson, type FromJsonOptions, type JsonValue } from "./json-codec";
import { decode, encode } from "./protobuf-codec";
import { schemas, type MessageSchema } from "./schema";

/** What ts-proto generates for every message (the subset we use). */
export interface GeneratedFns<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(input: Uint8Array): T;
}

/**
 * A message type: its full protobuf name, which is all our codecs need (they
 * read the schema), and ts-proto's generated functions where there are
 * some, for the ts-proto codec.
 */
export interface MessageType<T> {
  readonly fullName: string;
  readonly fns?: GeneratedFns<T>;
}

export function messageType<T>(fullName: string, fns?: GeneratedFns<T>): MessageType<T> {
  return { fullName, fns };
}

function generated<T>(type: MessageType<T>): GeneratedFns<T> {
  if (!type.fns) throw new Error(`no ts-proto code for ${type.fullName}`);
  return type.fns;
}

export type CodecName = "protobuf" | "json" | "ts-proto";
export const CODEC_NAMES: readonly CodecName[] = ["protobuf", "json", "ts-proto"];

export interface Codec {
  readonly name: CodecName;
  /** The gRPC content-type that announces it. */
  readonly contentType: string;
  /** One byte naming it in our TCP/UDP call header. */
  readonly id: number;
  encode<T>(type: MessageType<T>, msg: T): Uint8Array;
  decode<T>(type: MessageType<T>, bytes: Uint8Array): T;
}

const schemaCache = new Map<string, MessageSchema>();
export function schemaOf(type: MessageType<unknown>): MessageSchema {
  let s = schemaCache.get(type.fullName);
  if (!s) {
    s = schemas().message(type.fullName);
    schemaCache.set(type.fullName, s);
  }
  return s;
}

/** Load the schemas of these types now, so the first call does not pay for parsing .proto files. */
export function preloadSchemas(types: readonly MessageType<unknown>[]): void {
  for (const t of types) schemaOf(t);
}

export const protobufCodec: Codec = {
  name: "protobuf",
  contentType: "application/grpc+proto",
  id: 1,
  encode: (type, msg) => encode(schemaOf(type as MessageType<unknown>), msg as object),
  decode: <T>(type: MessageType<T>, bytes: Uint8Array) => decode<object>(schemaOf(type as MessageType<unknown>), bytes) as T,
};

/** A message in proto3 JSON (64-bit integers as strings, enums by name): for narration and results. */
export function messageToJson<T>(type: MessageType<T>, msg: T): { [key: string]: JsonValue } {
  return toJson(schemaOf(type as MessageType<unknown>), msg as object);
}

/** A message from proto3 JSON (already parsed, see parseJsonText), checked field by field. */
export function messageFromJson<T>(type: MessageType<T>, json: unknown, opts?: FromJsonOptions): T {
  return fromJson(schemaOf(type as MessageType<unknown>), json, opts) as T;
}

export const jsonCodec: Codec = {
  name: "json",
  contentType: "application/grpc+json",
  id: 2,
  encode: (type, msg) => Buffer.from(JSON.stringify(messageToJson(type, msg)), "utf8"),
  decode: (type, bytes) => messageFromJson(type, parseJsonText(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8"))),
};

export const tsProtoCodec: Codec = {
  name: "ts-proto",
  contentType: "application/grpc+proto",
  id: 3,
  encode: (type, msg) => generated(type).encode(msg).finish(),
  decode: (type, bytes) => generated(type).decode(bytes),
};

export function codecByName(name: string): Codec {
  switch (name) {
    case "protobuf":
    case "proto":
      return protobufCodec;
    case "json":
      return jsonCodec;
    case "ts-proto":
      return tsProtoCodec;
    default:
      throw new Error(`unknown codec ${JSON.stringify(name)} (protobuf, json or ts-proto)`);
  }
}

export function codecById(id: number): Codec | undefined {
  return [protobufCodec, jsonCodec, tsProtoCodec].find((c) => c.id === id);
}

/**
 * The codec a gRPC content-type asks for. "application/grpc" alone means
 * protobuf; anything after "+" or ";" names the subtype.
 */
export function codecForContentType(contentType: string | undefined): Codec | undefined {
  if (!contentType) return undefined;
  const m = /^application\/grpc(?:\+([a-z0-9.-]+))?(?:;.*)?$/i.exec(contentType.trim());
  if (!m) return undefined;
  const sub = (m[1] ?? "proto").toLowerCase();
  if (sub === "proto") return protobufCodec;
  if (sub === "json") return jsonCodec;
  return undefined;
}
