/**
 * `csi-lab rpc …`: the RPC playground's commands.
 *
 * Every command takes -h/--help (its flags, defaults and an example) and
 * --version. Bad input is an error that says what was wrong, with a
 * non-zero exit: the playground never quietly runs something other than
 * what was asked. Flags and input are all read before anything starts; what
 * is wrong with them exits 2, as the driver's flags do, and a call or a
 * dump that goes wrong afterwards exits 1.
 */
import { readFileSync } from "node:fs";
import * as readline from "node:readline/promises";
import { parseArgs, type ParseArgsConfig } from "node:util";
import pkg from "../../package.json";
import { checkToken } from "../csi/validate";
import { FlagError, repeatedFlag } from "../server/driver-flags";
import { hostArg, listenError } from "../server/host-flag";
import { stopOnSignals, textReport } from "../server/stop-signals";
import type { PlaygroundMethod } from "./call-ids/playground";
import { commandHelp, COMMANDS, METHODS, methodHelp, rpcUsage } from "./cli-help";
import { codecByName } from "./codecs/codec";
import { dumpError, dumpMessage, formatDump, parseHex } from "./codecs/dump";
import { parseJsonText } from "./codecs/json-codec";
import { schemas } from "./codecs/schema";
import { parseFaults, type FaultPlan } from "./faults/faults";
import { formatScenarios, runScenarios } from "./faults/scenarios";
import { playgroundDispatcher } from "./playground-service";
import { MAX_HEADER_TIMEOUT_MS } from "./transports/rpc-header";
import { transportName } from "./transports/transport";
import { csiExplained, endpointAddress } from "./walkthrough/csi-explained";
import { colorAllowed, fitText, outputWidth } from "./walkthrough/terminal";
import { call, serve } from "./walkthrough/two-ends";
import { requestFor, walkthrough } from "./walkthrough/walkthrough";

function methodName(s: string): PlaygroundMethod {
  const m = s.toLowerCase() as PlaygroundMethod;
  if (!METHODS.includes(m)) throw new Error(`unknown method ${JSON.stringify(s)} (${METHODS.join(", ")})`);
  return m;
}

function jsonArg(s: string | undefined): unknown {
  if (s === undefined) return undefined;
  try {
    return parseJsonText(s);
  } catch (err) {
    throw new Error(`--request is not JSON: ${s} (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** A deadline: what every transport can carry (TCP and UDP put it in a 32-bit header field). */
function timeoutArg(s: string | undefined): number {
  if (s === undefined) return 2000;
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > MAX_HEADER_TIMEOUT_MS) {
    throw new Error(`--timeout must be a whole number of milliseconds from 1 to ${MAX_HEADER_TIMEOUT_MS} (about 49.7 days), not ${JSON.stringify(s)}`);
  }
  return n;
}

/** Whether `serve` keeps UDP's duplicate-request cache: --no-cache means something only there. */
function noCacheArg(transport: string | undefined, noCache: boolean): boolean {
  if (noCache && transport !== "udp") throw new Error("--no-cache is for --transport udp: TCP and HTTP/2 have no duplicate-request cache");
  return !noCache;
}

function portArg(s: string | undefined, command: string, allowZero: boolean): number {
  if (s === undefined) throw new Error(`${command} needs --port (csi-lab rpc ${command} --help)`);
  const n = Number(s);
  if (!/^\d+$/.test(s) || n > 65535 || (n === 0 && !allowZero)) {
    throw new Error(`--port must be a whole number from 1 to 65535${allowZero ? " (0: any free port)" : ""}, not ${JSON.stringify(s)}`);
  }
  return n;
}

/**
 * --fault for one end of `serve` and `call`: each injects faults only into
 * what it sends (the caller its requests, the server its replies, and only
 * the server crashes), so a fault only the other end can inject is refused,
 * not quietly left out.
 */
function faultsAt(end: "serve" | "call", spec: string | undefined): FaultPlan {
  const plan = parseFaults(spec);
  if (end === "call" && plan.crash) throw new Error("--fault crash: only the server crashes; give it to rpc serve");
  if (end === "call" && plan.direction === "reply") throw new Error("--fault reply-only: the caller sends only requests; give reply faults to rpc serve");
  if (end === "serve" && plan.direction === "request") throw new Error("--fault request-only: the server sends only replies; give request faults to rpc call");
  return plan;
}

const write = (text: string) => void process.stdout.write(fitText(text, outputWidth()) + "\n");

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
const META = { help: { type: "boolean", short: "h" }, version: { type: "boolean" } } as const;
const { host: _host, port: _port, ...LOOPBACK } = COMMON;
const OPTIONS = {
  // Both ends run in this process on loopback: no --host or --port to ignore.
  walkthrough: { ...LOOPBACK, ...META },
  serve: { transport: COMMON.transport, host: COMMON.host, port: COMMON.port, fault: COMMON.fault, plain: COMMON.plain, "no-cache": { type: "boolean" }, quiet: { type: "boolean" }, ...META },
  call: { ...COMMON, ...META },
  csi: { endpoint: { type: "string" }, name: { type: "string" }, keep: { type: "boolean" }, plain: { type: "boolean" }, ...META },
  dump: { type: { type: "string" }, ...META },
  faults: META,
  table: META,
} as const satisfies Record<string, ParseArgsConfig["options"]>;

/** Reading the flags and the input: what is wrong there is the user's to fix (exit 2). */
function checked<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw err instanceof FlagError ? err : new FlagError(err instanceof Error ? err.message : String(err));
  }
}

function parse<O extends ParseArgsConfig["options"]>(command: string, args: string[], options: O, positionals = false) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: positionals, tokens: true });
  } catch (err) {
    throw new FlagError(`${err instanceof Error ? err.message.split(". ")[0] : String(err)} (csi-lab rpc ${command} --help)`);
  }
  const repeated = repeatedFlag(parsed.tokens, options ?? {});
  if (repeated) throw new FlagError(`${repeated} (csi-lab rpc ${command} --help)`);
  return parsed;
}

export async function main(argv: string[]): Promise<void> {
  // `csi-lab rpc walkthrough | head` closes our stdout early: stop quietly.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
  const [command, ...rest] = argv;
  if (command === undefined || command === "-h" || command === "--help" || command === "help") {
    write(rpcUsage());
    return;
  }
  if (command === "--version" || command === "version") {
    process.stdout.write(pkg.version + "\n");
    return;
  }
  if (!(command in OPTIONS)) throw new FlagError(`unknown rpc command ${JSON.stringify(command)}\n\n${rpcUsage()}`);
  const name = command as keyof typeof OPTIONS;
  const { values, positionals } = parse(name, rest, OPTIONS[name] as ParseArgsConfig["options"], name === "dump");
  const v = values as Record<string, string | boolean | undefined>;
  const str = (k: string) => v[k] as string | undefined;
  if (v["help"]) {
    const m = str("method");
    write((name === "walkthrough" || name === "call") && m !== undefined ? methodHelp(checked(() => methodName(m))) : commandHelp(name));
    return;
  }
  if (v["version"]) {
    process.stdout.write(pkg.version + "\n");
    return;
  }
  const plain = v["plain"] === true;
  const noColor = !colorAllowed(plain);
  switch (name) {
    case "walkthrough":
      return runWalkthrough(str, plain, noColor);
    case "serve": {
      const opts = checked(() => ({
        transport: transportName(str("transport") ?? "tcp"),
        host: hostArg(str("host"), true),
        port: portArg(str("port"), "serve", true),
        faults: faultsAt("serve", str("fault")),
        duplicateCache: noCacheArg(str("transport"), v["no-cache"] === true),
        quiet: v["quiet"] === true,
        plain: noColor,
        write,
      }));
      // Ctrl-C, SIGTERM or the end of the process that started it close the listener (stop-signals.ts).
      const stop = stopOnSignals("csi-lab rpc serve", textReport("csi-lab rpc serve"));
      const server = await serve(opts).catch((err: NodeJS.ErrnoException) => {
        throw listenError(err, opts.host, opts.port);
      });
      stop.serving(() => server.close());
      return;
    }
    case "call": {
      const opts = checked(() => {
        const method = methodName(str("method") ?? "add");
        const request = jsonArg(str("request"));
        requestFor(method, request);
        return {
          transport: transportName(str("transport") ?? "tcp"),
          host: hostArg(str("host"), false),
          port: portArg(str("port"), "call", false),
          codec: codecByName(str("codec") ?? "protobuf"),
          method,
          request,
          timeoutMs: timeoutArg(str("timeout")),
          faults: faultsAt("call", str("fault")),
          plain: noColor,
          write,
        };
      });
      // A call may wait as long as its deadline (--timeout: up to 49.7 days): Ctrl-C, SIGTERM or the end
      // of the process that started it abandon it. Exiting closes the connection, so the server sees its
      // caller go; the call did not return, so the exit status is 1 (stop-signals.ts).
      const stop = stopOnSignals("csi-lab rpc call", textReport("csi-lab rpc call"));
      stop.serving(async () => undefined, 1);
      const { ok } = await call(opts);
      if (!ok) process.exitCode = 1;
      return;
    }
    case "csi": {
      const endpoint = str("endpoint");
      if (endpoint !== undefined) checked(() => endpointAddress(endpoint));
      const volumeName = checked(() => volumeNameArg(str("name")));
      // Ctrl-C, SIGTERM or the end of the process that started it stop the demo as its end does: the call in
      // flight finishes, the volume it made is deleted, the driver it started is stopped; it exits 130 (stop-signals.ts).
      const stop = stopOnSignals("csi-lab rpc csi", textReport("csi-lab rpc csi"));
      const { ok } = await csiExplained({
        endpoint,
        volumeName,
        keep: v["keep"] === true,
        plain: noColor,
        write,
        stoppable: (close) => stop.serving(close, 130),
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
      const input = positionals.length === 0 || positionals[0] === "-" ? readFileSync(0, "utf8") : positionals.join(" ");
      const bytes = checked(() => parseHex(input));
      const type = str("type");
      const schema = type === undefined ? undefined : checked(() => schemas().message(messageTypeName(type)));
      const rows = dumpMessage(bytes, schema);
      write(formatDump(bytes, rows));
      const error = dumpError(rows);
      if (error) {
        process.stderr.write(`csi-lab: not valid protobuf: ${error}\n`);
        process.exitCode = 1;
      }
      return;
    }
  }
}

async function runWalkthrough(str: (k: string) => string | undefined, plain: boolean, noColor: boolean): Promise<void> {
  const options = checked(() => {
    const method = methodName(str("method") ?? (str("fault") ? "increment" : "add"));
    const request = jsonArg(str("request"));
    requestFor(method, request);
    return {
      transport: transportName(str("transport") ?? "tcp"),
      codec: codecByName(str("codec") ?? "protobuf"),
      faults: parseFaults(str("fault")),
      method,
      request,
      timeoutMs: timeoutArg(str("timeout")),
      plain: noColor,
      write,
    };
  });
  // SIGTERM, Ctrl-C where there is no terminal to read it as a key, or the end of the process that started it
  // (a deadline may be 49.7 days away) end the walkthrough: it says why, and exits 130, its servers and
  // connections closing with the process (stop-signals.ts).
  const stop = stopOnSignals("csi-lab rpc walkthrough", textReport("csi-lab rpc walkthrough"));
  stop.serving(async () => undefined, 130);
  const interactive = !plain && process.stdin.isTTY === true && process.stdout.isTTY === true;
  const rl = interactive ? readline.createInterface({ input: process.stdin, output: process.stdout }) : undefined;
  // Ctrl-C and Ctrl-D end the walkthrough at once, servers and all: the
  // process exits, and its sockets close with it.
  let finished = false;
  rl?.on("SIGINT", () => {
    process.stdout.write("\n");
    process.exit(130);
  });
  rl?.on("close", () => {
    if (finished) return;
    process.stdout.write("\n");
    process.exit(0);
  });
  const prompt = noColor ? "(Enter: next step)" : "\x1b[2m(Enter: next step)\x1b[0m";
  try {
    const { ok } = await walkthrough({ ...options, pause: rl ? async () => void (await rl.question(prompt)) : undefined });
    if (!ok) process.exitCode = 1;
  } finally {
    finished = true;
    rl?.close();
  }
}

/** --name, held to the driver's own rule for a volume name before a driver is started or called. */
function volumeNameArg(s: string | undefined): string {
  if (s === undefined) return `pvc-rpc-walkthrough-${process.pid}`;
  try {
    return checkToken(s, "name");
  } catch (err) {
    throw new Error(`--name: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A message type by full name, or by its short name when only one type has it. */
function messageTypeName(name: string): string {
  const all = schemas().messageNames();
  if (all.includes(name)) return name;
  const matches = all.filter((n) => n.endsWith(`.${name}`));
  if (matches.length === 1) return matches[0]!;
  const byPackage = new Map<string, string[]>();
  for (const n of all) {
    const pkgName = n.slice(0, n.lastIndexOf("."));
    byPackage.set(pkgName, [...(byPackage.get(pkgName) ?? []), n.slice(pkgName.length + 1)]);
  }
  const list = fitText([...byPackage].map(([p, names]) => `  ${p}: ${names.join(", ")}`).join("\n"), outputWidth(process.stderr));
  throw new Error(`${matches.length > 1 ? `${JSON.stringify(name)} is ambiguous (${matches.join(", ")})` : `no message type ${JSON.stringify(name)}`}. The types (full name, or the short one):\n${list}`);
}

// Keep the help and the option table in step.
for (const c of Object.keys(COMMANDS)) if (!(c in OPTIONS)) throw new Error(`rpc ${c} has help but no options`);
