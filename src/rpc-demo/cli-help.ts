/**
 * The playground's help: each command's flags, defaults and an example,
 * and each method's fields with their types, read from the schema so the
 * help cannot disagree with what the codecs accept.
 */
import { Playground, type PlaygroundMethod } from "./call-ids/playground";
import { describeType } from "./codecs/ranges";
import { Kind, schemas, type FieldSchema } from "./codecs/schema";
import { DEFAULT_REQUESTS } from "./walkthrough/walkthrough";

export const METHODS = Object.keys(Playground) as PlaygroundMethod[];

interface Flag {
  readonly flag: string;
  readonly meaning: string;
  readonly dflt?: string;
}

interface CommandHelp {
  readonly usage: string;
  readonly summary: string;
  readonly flags: readonly Flag[];
  readonly examples: readonly string[];
  readonly more?: string;
}

const TRANSPORT: Flag = { flag: "--transport tcp|udp|http2", meaning: "how the bytes travel", dflt: "tcp" };
const CODEC: Flag = { flag: "--codec protobuf|json", meaning: "how the arguments become bytes", dflt: "protobuf" };
const METHOD: Flag = { flag: `--method ${METHODS.join("|")}`, meaning: "which procedure (--method M --help: its fields)", dflt: "add" };
const REQUEST: Flag = { flag: "--request JSON", meaning: "the request in proto3 JSON, checked against the method's fields", dflt: "an example per method" };
const TIMEOUT: Flag = { flag: "--timeout MS", meaning: "the call's deadline in milliseconds", dflt: "2000" };
const FAULT: Flag = {
  flag: "--fault SPEC",
  meaning: "drop | drop=P | duplicate[=P] | delay=MS | crash, with request-only | reply-only | seed=N (comma-separated)",
  dflt: "none",
};
const PLAIN: Flag = { flag: "--plain", meaning: "plain text: no colour, no pauses (colour is also off with NO_COLOR set)" };
const HOST: Flag = { flag: "--host H", meaning: "the address to listen on / to call", dflt: "127.0.0.1" };
const PORT: Flag = { flag: "--port P", meaning: "the port (1-65535; 0 = any free port, for serve)", dflt: "required" };
const HELP: Flag = { flag: "-h, --help", meaning: "this help" };
const VERSION: Flag = { flag: "--version", meaning: "the csi-lab version" };

export const COMMANDS: Record<string, CommandHelp> = {
  walkthrough: {
    usage: "csi-lab rpc walkthrough [flags]",
    summary: "One call, both ends in this process on loopback, narrated layer by layer (Enter: next step).",
    flags: [TRANSPORT, CODEC, { ...METHOD, dflt: "add, or increment with --fault" }, REQUEST, TIMEOUT, FAULT, PLAIN, HELP, VERSION],
    examples: ["csi-lab rpc walkthrough --transport udp --fault drop", `csi-lab rpc walkthrough --plain --codec json --request '{"a":"9223372036854775806","b":1}'`],
    more: "Ctrl-C or Ctrl-D ends it at once.",
  },
  serve: {
    usage: "csi-lab rpc serve --port P [flags]",
    summary: "Serve the Playground and narrate the server's half of every call (Ctrl-C to stop).",
    flags: [TRANSPORT, PORT, HOST, FAULT, { flag: "--no-cache", meaning: "UDP: no duplicate-request cache (watch calls run twice)" }, { flag: "--quiet", meaning: "do not narrate" }, PLAIN, HELP, VERSION],
    examples: ["csi-lab rpc serve --transport udp --port 7000 --fault drop=0.3 --no-cache"],
  },
  call: {
    usage: "csi-lab rpc call --port P [flags]",
    summary: "Call a running `rpc serve` and narrate the caller's half.",
    flags: [TRANSPORT, PORT, HOST, METHOD, REQUEST, CODEC, TIMEOUT, FAULT, PLAIN, HELP, VERSION],
    examples: [`csi-lab rpc call --transport udp --port 7000 --method increment --request '{"counter":"c","requestToken":"t1"}'`],
  },
  csi: {
    usage: "csi-lab rpc csi [flags]",
    summary: "CreateVolume to a csi-lab driver, narrated: the gRPC path, the bytes, a retry, a conflict.",
    flags: [
      { flag: "--endpoint URL", meaning: "a running driver: unix:///path/csi.sock or tcp://host:port", dflt: "start a driver on a temporary socket and root" },
      { flag: "--name NAME", meaning: "the volume's name", dflt: "pvc-rpc-walkthrough-<pid>" },
      { flag: "--keep", meaning: "leave the volume in the driver (it is deleted at the end otherwise, also on error or Ctrl-C)" },
      PLAIN,
      HELP,
      VERSION,
    ],
    examples: ["csi-lab rpc csi --plain", "csi-lab rpc csi --endpoint unix:///tmp/x/csi.sock"],
  },
  dump: {
    usage: "csi-lab rpc dump [--type NAME] [HEX | -]",
    summary: "Annotate protobuf bytes: every byte once, at its offset. Without --type, from the wire alone.",
    flags: [
      { flag: "--type NAME", meaning: "a message type, e.g. csilab.rpcdemo.v1.Sample or just Sample (a wrong name lists them)" },
      { flag: "HEX | -", meaning: "the bytes as hex (spaces, commas, colons and 0x allowed), or - for stdin", dflt: "stdin" },
      HELP,
      VERSION,
    ],
    examples: ["csi-lab rpc dump --type csilab.rpcdemo.v1.AddRequest 08 04 10 50", "echo 08 96 01 12 03 61 62 63 | csi-lab rpc dump"],
    more: "Exit status 1 when the bytes are not valid protobuf (the dump says where), 2 for bad input.",
  },
  faults: {
    usage: "csi-lab rpc faults",
    summary: "At-least-once, at-most-once, deadlines and crashes, measured on loopback UDP (a few seconds).",
    flags: [HELP, VERSION],
    examples: ["csi-lab rpc faults"],
  },
  table: {
    usage: "csi-lab rpc table",
    summary: "The server's dispatch table: numeric and by-name call IDs of every procedure.",
    flags: [HELP, VERSION],
    examples: ["csi-lab rpc table"],
  },
};

export function commandHelp(name: string): string {
  const c = COMMANDS[name]!;
  const lines = [`${c.usage}\n`, c.summary, "", "Flags:"];
  for (const f of c.flags) {
    lines.push(`  ${f.flag}`);
    lines.push(`      ${f.meaning}${f.dflt ? ` (default: ${f.dflt})` : ""}`);
  }
  if (name === "walkthrough" || name === "call") lines.push("", "Methods and their request fields:", ...methodsSummary().map((l) => `  ${l}`));
  lines.push("", "Example:", ...c.examples.map((e) => `  ${e}`));
  if (c.more) lines.push("", c.more);
  return lines.join("\n");
}

export function rpcUsage(): string {
  const lines = ["csi-lab rpc — how a remote procedure call works, byte by byte", ""];
  for (const c of Object.values(COMMANDS)) lines.push(`  ${c.usage}`, `      ${c.summary}`);
  lines.push("", "csi-lab rpc COMMAND --help: the command's flags, defaults and an example.");
  return lines.join("\n");
}

function fieldLine(f: FieldSchema): string {
  const type = f.kind === Kind.MAP ? `object of ${f.mapValue!.typeName}` : f.kind === Kind.MESSAGE ? `object: ${f.typeName}` : describeType(f);
  return `${f.jsonName}: ${f.repeated && f.kind !== Kind.MAP ? `list of ${type}` : type}`;
}

/** One line per method: its request fields in brief. */
function methodsSummary(): string[] {
  return METHODS.map((m) => {
    const fields = schemas().message(Playground[m].request.fullName).declared.map((f) => `${f.jsonName}: ${f.repeated ? `[${f.typeName}]` : f.typeName}`);
    return `${m.padEnd(10)} ${fields.length > 8 ? `${fields.slice(0, 4).join(", ")}, … (${fields.length} fields: --method ${m} --help)` : fields.join(", ") || "(no fields)"}`;
  });
}

/** A method's request and reply, field by field, with an example request. */
export function methodHelp(method: PlaygroundMethod): string {
  const p = Playground[method];
  const lines = [`Playground.${p.name}: path ${p.path}, program 0x${p.number.program.toString(16)} procedure ${p.number.procedure}`, ""];
  for (const [what, type] of [
    ["request", p.request.fullName],
    ["reply", p.response.fullName],
  ] as const) {
    const fields = schemas().message(type).declared;
    lines.push(`${what} ${type}${fields.length ? ":" : " (no fields)"}`);
    for (const f of fields) lines.push(`  ${fieldLine(f)}`);
  }
  lines.push("", `Example: --method ${method} --request '${JSON.stringify(DEFAULT_REQUESTS[method])}'`);
  lines.push("64-bit integers are exact: write them as strings (\"9223372036854775807\"), as proto3 JSON does.");
  return lines.join("\n");
}
