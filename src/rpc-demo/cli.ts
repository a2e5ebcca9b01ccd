/**
 * `csi-lab rpc …`: the RPC playground's commands.
 */
import { readFileSync } from "node:fs";
import * as readline from "node:readline/promises";
import { parseArgs } from "node:util";
import type { PlaygroundMethod } from "./call-ids/playground";
import { codecByName } from "./codecs/codec";
import { dumpMessage, formatDump, parseHex } from "./codecs/dump";
import { schemas } from "./codecs/schema";
import { parseFaults } from "./faults/faults";
import { formatScenarios, runScenarios } from "./faults/scenarios";
import { playgroundDispatcher } from "./playground-service";
import { transportName } from "./transports/transport";
import { csiExplained } from "./walkthrough/csi-explained";
import { call, serve } from "./walkthrough/two-ends";
import { walkthrough } from "./walkthrough/walkthrough";

const USAGE = `csi-lab rpc — how a remote procedure call works, byte by byte

  csi-lab rpc walkthrough [options]   one call, both ends in this process, narrated
      --transport tcp|udp|http2         default tcp
      --codec protobuf|json             default protobuf
      --method add|echo|increment|sleep|fail   default add (increment with --fault)
      --request JSON                    the request in proto3 JSON, e.g. '{"a":1,"b":2}'
      --timeout MS                      the call's deadline, default 2000
      --fault SPEC                      drop | drop=P | duplicate | delay=MS | crash,
                                        + request-only | reply-only | seed=N (comma-separated)
      --plain                           plain text, no colour, no pauses
  csi-lab rpc serve --transport T --port P [--host H] [--fault SPEC] [--no-cache] [--quiet]
  csi-lab rpc call  --transport T --port P [--host H] [--method M] [--request JSON] [--codec C] [--timeout MS]
  csi-lab rpc csi [--endpoint unix:///path/csi.sock] [--name NAME] [--plain]
                                      CreateVolume to the CSI driver, narrated (starts one if no endpoint)
  csi-lab rpc faults                  at-least-once, at-most-once, deadlines and crashes, measured
  csi-lab rpc table                   the server's dispatch table
  csi-lab rpc dump [--type NAME] [HEX | -]   annotate protobuf bytes (without --type: schema-less)
`;

const METHODS: readonly PlaygroundMethod[] = ["add", "echo", "increment", "sleep", "fail"];

function methodName(s: string): PlaygroundMethod {
  const m = s.toLowerCase() as PlaygroundMethod;
  if (!METHODS.includes(m)) throw new Error(`unknown method ${JSON.stringify(s)} (${METHODS.join(", ")})`);
  return m;
}

function jsonArg(s: string | undefined): unknown {
  if (s === undefined) return undefined;
  try {
    return JSON.parse(s) as unknown;
  } catch {
    throw new Error(`--request is not JSON: ${s}`);
  }
}

function numberArg(s: string | undefined, name: string, dflt: number): number {
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a whole number ≥ 0, not ${s}`);
  return n;
}

const write = (text: string) => void process.stdout.write(text + "\n");

const COMMON = {
  transport: { type: "string" },
  codec: { type: "string" },
  method: { type: "string" },
  request: { type: "string" },
  timeout: { type: "string" },
  fault: { type: "string" },
  plain: { type: "boolean" },
  host: { type: "string" },
  port: { type: "string" },
} as const;

export async function main(argv: string[]): Promise<void> {
  // `csi-lab rpc walkthrough | head` closes our stdout early: stop quietly.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
  const [command, ...rest] = argv;
  switch (command) {
    case "walkthrough": {
      const { values } = parseArgs({ args: rest, strict: true, options: COMMON });
      const faults = parseFaults(values.fault);
      const plain = values.plain ?? !process.stdout.isTTY;
      const interactive = !plain && process.stdin.isTTY === true;
      const rl = interactive ? readline.createInterface({ input: process.stdin, output: process.stdout }) : undefined;
      try {
        const { ok } = await walkthrough({
          transport: transportName(values.transport ?? "tcp"),
          codec: codecByName(values.codec ?? "protobuf"),
          faults,
          method: methodName(values.method ?? (values.fault ? "increment" : "add")),
          request: jsonArg(values.request),
          timeoutMs: numberArg(values.timeout, "timeout", 2000),
          plain,
          write,
          pause: rl ? async () => void (await rl.question("\x1b[2m(Enter: next step)\x1b[0m")) : undefined,
        });
        if (!ok) process.exitCode = 1;
      } finally {
        rl?.close();
      }
      return;
    }
    case "serve": {
      const { values } = parseArgs({ args: rest, strict: true, options: { ...COMMON, "no-cache": { type: "boolean" }, quiet: { type: "boolean" } } });
      if (values.port === undefined) throw new Error("serve needs --port");
      const server = await serve({
        transport: transportName(values.transport ?? "tcp"),
        host: values.host ?? "127.0.0.1",
        port: numberArg(values.port, "port", 0),
        faults: parseFaults(values.fault),
        duplicateCache: !values["no-cache"],
        quiet: values.quiet ?? false,
        plain: values.plain ?? !process.stdout.isTTY,
        write,
      });
      const stop = () => void server.close().then(() => process.exit(0));
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      return;
    }
    case "call": {
      const { values } = parseArgs({ args: rest, strict: true, options: COMMON });
      if (values.port === undefined) throw new Error("call needs --port");
      const { ok } = await call({
        transport: transportName(values.transport ?? "tcp"),
        host: values.host ?? "127.0.0.1",
        port: numberArg(values.port, "port", 0),
        codec: codecByName(values.codec ?? "protobuf"),
        method: methodName(values.method ?? "add"),
        request: jsonArg(values.request),
        timeoutMs: numberArg(values.timeout, "timeout", 2000),
        faults: parseFaults(values.fault),
        plain: values.plain ?? !process.stdout.isTTY,
        write,
      });
      if (!ok) process.exitCode = 1;
      return;
    }
    case "csi": {
      const { values } = parseArgs({ args: rest, strict: true, options: { endpoint: { type: "string" }, name: { type: "string" }, plain: { type: "boolean" } } });
      const { ok } = await csiExplained({
        endpoint: values.endpoint,
        volumeName: values.name ?? `pvc-rpc-walkthrough-${process.pid}`,
        plain: values.plain ?? !process.stdout.isTTY,
        write,
      });
      if (!ok) process.exitCode = 1;
      return;
    }
    case "faults":
      write("Running each scenario on loopback UDP (a few seconds)…\n");
      write(formatScenarios(await runScenarios()));
      return;
    case "table":
      write(playgroundDispatcher().describe());
      return;
    case "dump": {
      const { values, positionals } = parseArgs({ args: rest, strict: true, allowPositionals: true, options: { type: { type: "string" } } });
      const input = positionals.length === 0 || positionals[0] === "-" ? readFileSync(0, "utf8") : positionals.join(" ");
      const bytes = parseHex(input);
      const schema = values.type ? schemas().message(values.type) : undefined;
      write(formatDump(bytes, dumpMessage(bytes, schema)));
      return;
    }
    case undefined:
    case "-h":
    case "--help":
    case "help":
      process.stdout.write(USAGE);
      return;
    default:
      throw new Error(`unknown rpc command ${JSON.stringify(command)}\n\n${USAGE}`);
  }
}
