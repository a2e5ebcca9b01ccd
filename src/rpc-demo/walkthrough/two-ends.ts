/**
 * `csi-lab rpc serve` and `csi-lab rpc call`: the two ends in two terminals
 * (or on two machines), each narrating its own half of every call.
 */
import { hostPort } from "../../server/host-flag";
import { Playground, type PlaygroundMethod } from "../call-ids/playground";
import type { AnyProcedure } from "../call-ids/registry";
import { messageToJson, preloadSchemas, type Codec } from "../codecs/codec";
import { describeFaults, FaultInjector, waitNote, type FaultPlan } from "../faults/faults";
import { PlaygroundState, playgroundDispatcher } from "../playground-service";
import { RpcError } from "../rpc-error";
import { Trace } from "../trace";
import { connectClient, startServer } from "../transports";
import { callProcedure, type ServerTransport, type TransportName } from "../transports/transport";
import { narrate, renderStep } from "./narrate";
import { requestFor } from "./walkthrough";

export interface ServeOptions {
  readonly transport: TransportName;
  readonly host: string;
  readonly port: number;
  readonly faults: FaultPlan;
  readonly duplicateCache: boolean;
  readonly quiet: boolean;
  readonly plain: boolean;
  readonly write: (text: string) => void;
}

/**
 * A request that arrives after a gap this long begins a new block. Other late
 * steps stay in the block of the call they belong to: a handler stopped at
 * its deadline, a held-up reply with no caller left to take it.
 */
const NEW_CALL_GAP = 1_000_000_000n;

function preload(): void {
  preloadSchemas(Object.values(Playground).flatMap((p) => [p.request, p.response] as const));
}

export async function serve(opts: ServeOptions): Promise<ServerTransport> {
  preload();
  const state = new PlaygroundState();
  const dispatcher = playgroundDispatcher(state);
  let prev = 0n;
  let n = 0;
  const trace = opts.quiet
    ? undefined
    : new Trace((step) => {
        if (step.at - prev > NEW_CALL_GAP && step.event === "receive") {
          opts.write("—".repeat(40));
          n = 0;
          prev = step.at;
        }
        opts.write(renderStep(step, n++, step.at - prev, { plain: opts.plain }));
        prev = step.at;
      });
  // After an injected crash the server comes back on the port it had, as a crashed service comes back
  // on its configured one: a caller told that port (the one printed below, when --port 0 picked it) retries
  // there and reaches it, as the lesson needs (the call ran; the retry runs it again).
  let current: ServerTransport;
  let restart: NodeJS.Timeout | undefined;
  let closed = false;
  const start = (faults: FaultPlan, port: number): Promise<ServerTransport> =>
    startServer(opts.transport, dispatcher, {
      host: opts.host,
      port,
      trace,
      faults: new FaultInjector(faults),
      duplicateCache: opts.duplicateCache,
      onCrash: () => {
        opts.write("✗ injected crash: the server went down; restarting it on the same port in 1 s (memory lost, counters kept)");
        // It comes back with the same faults, except that it crashes only once.
        const { port } = current;
        restart = setTimeout(() => {
          start({ ...faults, crash: false }, port).then(
            (server) => {
              if (closed) return void server.close();
              current = server;
              opts.write(`server restarted on ${hostPort(opts.host, port)}`);
            },
            (err: Error) => opts.write(`✗ the server could not restart on ${hostPort(opts.host, port)}: ${err.message}`),
          );
        }, 1000);
      },
    });
  const server = (current = await start(opts.faults, opts.port));
  opts.write(
    [
      `Playground serving over ${opts.transport} on ${hostPort(opts.host, server.port)} · faults: ${describeFaults(opts.faults)}` +
        (opts.transport === "udp" ? ` · duplicate-request cache ${opts.duplicateCache ? "on" : "off"}` : ""),
      ...(opts.transport !== "udp" && (opts.faults.drop > 0 || opts.faults.dropFirst > 0)
        ? [`Over ${opts.transport === "tcp" ? "TCP" : "HTTP/2"} a dropped message is never resent: its caller waits out its whole deadline.`]
        : []),
      "",
      dispatcher.describe(),
      "",
      "Waiting for calls (Ctrl-C to stop).",
    ].join("\n"),
  );
  // Closing closes the server that runs now: the first, or the one that came back after a crash.
  return {
    name: server.name,
    port: server.port,
    close: async () => {
      closed = true;
      clearTimeout(restart);
      await current.close();
    },
  };
}

export interface CallCliOptions {
  readonly transport: TransportName;
  readonly host: string;
  readonly port: number;
  readonly codec: Codec;
  readonly method: PlaygroundMethod;
  readonly request: unknown;
  readonly timeoutMs: number;
  readonly faults: FaultPlan;
  readonly plain: boolean;
  readonly write: (text: string) => void;
}

export async function call(opts: CallCliOptions): Promise<{ ok: boolean }> {
  preload();
  const proc = Playground[opts.method] as AnyProcedure;
  const req = requestFor(opts.method, opts.request);
  const client = await connectClient(opts.transport, { host: opts.host, port: opts.port, faults: new FaultInjector(opts.faults) });
  const note = waitNote(opts.faults, opts.transport, opts.timeoutMs, 0);
  if (note) opts.write(note);
  const trace = new Trace();
  const start = process.hrtime.bigint();
  let result: unknown;
  let error: RpcError | undefined;
  try {
    result = await callProcedure(client, opts.codec, proc, req, { timeoutMs: opts.timeoutMs, trace });
  } catch (err) {
    error = RpcError.from(err);
  } finally {
    await client.close();
  }
  opts.write(`Playground.${proc.name} to ${hostPort(opts.host, opts.port)} over ${opts.transport} (${opts.codec.name})\n`);
  const story = narrate(trace, start, { plain: opts.plain });
  for (const s of story.steps) opts.write(s + "\n");
  opts.write(error ? `Result: ✗ ${error.codeName}: ${error.message}` : `Result: ${JSON.stringify(messageToJson(proc.response, result))}`);
  opts.write("\n" + story.summary);
  return { ok: error === undefined };
}
