/**
 * `csi-lab rpc walkthrough`: one remote call, narrated layer by layer.
 *
 * Both ends run in this process on loopback (real sockets), sharing one
 * Trace: look up the call ID → encode → frame → send → receive → decode →
 * dispatch → run → and back. With --fault the network or the server
 * misbehaves, and the story shows what the caller sees and what the server
 * really did: how many times the procedure ran for this one call.
 */
import { Playground, type PlaygroundMethod } from "../call-ids/playground";
import type { AnyProcedure } from "../call-ids/registry";
import { messageFromJson, messageToJson, type Codec } from "../codecs/codec";
import { describeFaults, FaultInjector, waitNote, type FaultPlan } from "../faults/faults";
import { PlaygroundState, playgroundDispatcher } from "../playground-service";
import { Code, RpcError } from "../rpc-error";
import { Trace } from "../trace";
import { connectClient, startServer } from "../transports";
import { callProcedure, type ClientTransport, type ServerTransport, type TransportName } from "../transports/transport";
import { narrate } from "./narrate";

export interface WalkthroughOptions {
  readonly transport: TransportName;
  readonly codec: Codec;
  readonly faults: FaultPlan;
  readonly method: PlaygroundMethod;
  /** The request as proto3 JSON (see parseJsonText); a default per method when absent. */
  readonly request: unknown;
  readonly timeoutMs: number;
  readonly plain: boolean;
  readonly write: (text: string) => void;
  /** Wait for Enter between steps (a terminal, not --plain). */
  readonly pause?: () => Promise<void>;
}

export const DEFAULT_REQUESTS: Record<PlaygroundMethod, unknown> = {
  add: { a: "2", b: "40" },
  echo: { i32: 150, s64: "-2", text: "hello", color: "COLOR_GREEN", point: { x: 1, y: -1 }, numbers: [1, 300], labels: { zone: "a" } },
  increment: { counter: "demo", requestToken: "walkthrough-1" },
  sleep: { millis: 50 },
  fail: { code: Code.NOT_FOUND, message: "no such volume" },
};

/**
 * The request for a method from its proto3 JSON, checked against the
 * schema: a value that does not fit its field is refused, never changed.
 */
export function requestFor(method: PlaygroundMethod, json: unknown): unknown {
  const proc = Playground[method] as AnyProcedure;
  try {
    return messageFromJson(proc.request, json === undefined ? DEFAULT_REQUESTS[method] : json, { nullIsDefault: false });
  } catch (err) {
    throw new Error(`--request for ${proc.name}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * One untraced call first, on a separate fault-free server: the first call
 * in a process pays for loading schemas and compiling code, which would
 * swamp the times the narration shows.
 */
async function warmUp(transport: TransportName, codec: Codec): Promise<void> {
  const server = await startServer(transport, playgroundDispatcher());
  const client = await connectClient(transport, { port: server.port });
  try {
    for (let i = 0; i < 20; i++) await callProcedure(client, codec, Playground.add, { a: BigInt(i), b: 1n }, { timeoutMs: 2000 });
  } finally {
    await client.close();
    await server.close();
  }
}

/** What a walkthrough says before the call: what is called, how, and the server's table. */
export interface WalkthroughIntro {
  readonly title: string;
  readonly settings: string;
  readonly table: string;
  /** How long a fault will make the caller wait, said before the wait. */
  readonly note: string | undefined;
}

/** One call made and traced: what the terminal narrates and the lab page draws. */
export interface WalkthroughRun {
  readonly intro: WalkthroughIntro;
  readonly trace: Trace;
  readonly start: bigint;
  readonly procName: string;
  /** The reply in proto3 JSON, or the error the caller got. */
  readonly result: { [key: string]: unknown } | undefined;
  readonly error: RpcError | undefined;
  /** Increment only: how many times the server ran the procedure for this one call. */
  readonly runs: number | undefined;
  /** The sentence about `runs`. */
  readonly runsText: string | undefined;
}

/** The engine: start both ends, make the call (and the caller's retry under faults), trace every step. */
export async function runWalkthrough(opts: Omit<WalkthroughOptions, "plain" | "write" | "pause">, onIntro?: (intro: WalkthroughIntro) => void): Promise<WalkthroughRun> {
  const proc = Playground[opts.method] as AnyProcedure;
  const req = requestFor(opts.method, opts.request);
  const trace = new Trace();
  const state = new PlaygroundState();
  const dispatcher = playgroundDispatcher(state);
  const faulty = new FaultInjector(opts.faults).active;

  await warmUp(opts.transport, opts.codec);
  let server: ServerTransport;
  let restarted: Promise<void> | undefined;
  server = await startServer(opts.transport, dispatcher, {
    trace,
    faults: new FaultInjector(opts.faults),
    onCrash: () => {
      // The process comes back on the same port. Its memory (the duplicate-
      // request cache) is gone; the counters stand for data on disk and stay.
      restarted = (async () => {
        server = await startServer(opts.transport, dispatcher, { port, trace });
        trace.step("server", "fault", "the server restarts on the same port: the counters survive (they stand for data on disk), its in-memory cache does not", { event: "restart" });
      })();
    },
  });
  const port = server.port;

  const intro: WalkthroughIntro = {
    title: `RPC walkthrough: Playground.${proc.name}(${JSON.stringify(messageToJson(proc.request, req))})`,
    settings: `transport ${opts.transport} · codec ${opts.codec.name} · deadline ${opts.timeoutMs} ms · faults: ${describeFaults(opts.faults)}`,
    table: dispatcher.describe(),
    // Said before the call, so a class knows how long the silence will last.
    note: waitNote(opts.faults, opts.transport, opts.timeoutMs, opts.transport === "udp" ? 0 : 1),
  };
  onIntro?.(intro);

  const clientFaults = new FaultInjector({ ...opts.faults, seed: opts.faults.seed + 1 });
  const connect = () => connectClient(opts.transport, { port, faults: clientFaults, wire: true });
  let client: ClientTransport = await connect();
  const start = process.hrtime.bigint();
  let result: unknown;
  let error: RpcError | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        result = await callProcedure(client, opts.codec, proc, req, { timeoutMs: opts.timeoutMs, trace });
        error = undefined;
        break;
      } catch (err) {
        error = RpcError.from(err);
        const retryable = error.code === Code.UNAVAILABLE || error.code === Code.DEADLINE_EXCEEDED;
        // UDP already retransmits inside the call; over TCP and HTTP/2 the caller retries once.
        if (!faulty || !retryable || attempt > 1 || opts.transport === "udp") break;
        trace.step("client", "transport", `the call failed with ${error.codeName}; the caller cannot know whether it ran, and retries on a new connection`, { event: "retry" });
        await restarted;
        await client.close();
        client = await connect();
      }
    }
    await restarted;
  } finally {
    await client.close();
    await server.close();
  }

  let runs: number | undefined;
  let runsText: string | undefined;
  if (opts.method === "increment") {
    const token = (req as { requestToken?: string }).requestToken ?? "";
    runs = state.runs.get(token) ?? 0;
    runsText =
      `The server ran Increment ${runs} time${runs === 1 ? "" : "s"} for this one call` +
      (runs > 1 ? ": at-least-once — a retry or a duplicate ran it again." : runs === 0 ? ": it never ran." : ".");
  }
  return {
    intro,
    trace,
    start,
    procName: proc.name,
    result: error ? undefined : messageToJson(proc.response, result),
    error,
    runs,
    runsText,
  };
}

/** `csi-lab rpc walkthrough`: the engine's run, told as text. */
export async function walkthrough(opts: WalkthroughOptions): Promise<{ ok: boolean }> {
  const { write } = opts;
  const run = await runWalkthrough(opts, (intro) => {
    write([intro.title, intro.settings, "", "The server's dispatch table (the same IDs are compiled into the client):", ...intro.table.split("\n").map((l) => `  ${l}`), ""].join("\n"));
    if (intro.note) write(`${intro.note}\n`);
  });
  const story = narrate(run.trace, run.start, { plain: opts.plain });
  for (const step of story.steps) {
    write(step + "\n");
    if (opts.pause) await opts.pause();
  }
  write("");
  write(run.error ? `Result: ✗ ${run.error.codeName}: ${run.error.message}` : `Result: ${JSON.stringify(run.result)}`);
  if (run.runsText) write(run.runsText);
  write("\n" + story.summary + "\n");
  return { ok: run.error === undefined };
}
