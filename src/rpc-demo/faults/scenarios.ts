/**
 * `csi-lab rpc faults`: the delivery guarantees, measured rather than told.
 *
 *   1. Loss, no memory      UDP, 30% loss, retransmission, no duplicate cache:
 *                           every call completes, some run twice — at-least-once.
 *   2. Loss, with memory    the same with the cache: each runs exactly once.
 *   3. Deadline             the reply is delayed past the deadline: the caller
 *                           gets DEADLINE_EXCEEDED, yet the call did run.
 *   4. Crash                the server dies after running a call, before the
 *                           reply, and comes back: its cache died with it, so
 *                           the retransmission runs the call again.
 * Cases 3 and 4 are why CSI makes CreateVolume idempotent by name (see
 * `csi-lab rpc csi`): no transport can promise exactly-once across crashes.
 */
import { Playground } from "../call-ids/playground";
import { protobufCodec } from "../codecs/codec";
import { PlaygroundState, playgroundDispatcher } from "../playground-service";
import { RpcError } from "../rpc-error";
import { callProcedure } from "../transports/transport";
import { UdpClient, UdpServer } from "../transports/udp";
import { FaultInjector, NO_FAULTS, type FaultPlan } from "./faults";

export interface ScenarioResult {
  readonly name: string;
  readonly calls: number;
  readonly completed: number;
  readonly failed: string[];
  /** Times the server ran the procedure, over all calls. */
  readonly runs: number;
  readonly lesson: string;
}

async function scenario(
  name: string,
  lesson: string,
  calls: number,
  server: { plan: FaultPlan; cache: boolean },
  client: { plan: FaultPlan; timeoutMs: number },
): Promise<ScenarioResult> {
  const state = new PlaygroundState();
  const dispatcher = playgroundDispatcher(state);
  let udp: UdpServer;
  let restarted: Promise<void> | undefined;
  udp = await UdpServer.listen(dispatcher, {
    duplicateCache: server.cache,
    faults: new FaultInjector(server.plan),
    onCrash: () => {
      restarted = UdpServer.listen(dispatcher, { port: udp.port, duplicateCache: server.cache }).then((s) => {
        udp = s;
      });
    },
  });
  const c = await UdpClient.connect({ port: udp.port, faults: new FaultInjector(client.plan), retransmitMs: 20, maxRetransmitMs: 80 });
  const failed: string[] = [];
  let completed = 0;
  await Promise.all(
    Array.from({ length: calls }, (_, i) =>
      callProcedure(c, protobufCodec, Playground.increment, { counter: "n", requestToken: `t${i}` }, { timeoutMs: client.timeoutMs }).then(
        () => void completed++,
        (err: unknown) => void failed.push(RpcError.from(err).codeName),
      ),
    ),
  );
  await restarted;
  // Let delayed replies and late retransmissions land before counting.
  await new Promise((r) => setTimeout(r, 400));
  await c.close();
  await udp.close();
  const runs = [...state.runs.values()].reduce((a, b) => a + b, 0);
  return { name, calls, completed, failed, runs, lesson };
}

export async function runScenarios(): Promise<ScenarioResult[]> {
  const lossy: FaultPlan = { ...NO_FAULTS, drop: 0.3 };
  return [
    await scenario("UDP, 30% loss, no duplicate cache", "at-least-once: retransmissions ran some calls twice", 50, { plan: { ...lossy, seed: 3 }, cache: false }, { plan: { ...lossy, seed: 4 }, timeoutMs: 10_000 }),
    await scenario("UDP, 30% loss, duplicate cache", "at-most-once: repeats were answered from the cache", 50, { plan: { ...lossy, seed: 3 }, cache: true }, { plan: { ...lossy, seed: 4 }, timeoutMs: 10_000 }),
    await scenario("reply delayed 300 ms, deadline 100 ms", "the caller saw DEADLINE_EXCEEDED, but the call ran: failure ≠ not done", 1, { plan: { ...NO_FAULTS, delayMs: 300 }, cache: true }, { plan: NO_FAULTS, timeoutMs: 100 }),
    await scenario("server crashes before replying, restarts", "the cache died with the server: the retransmission ran the call again", 1, { plan: { ...NO_FAULTS, crash: true }, cache: true }, { plan: NO_FAULTS, timeoutMs: 5_000 }),
  ];
}

export function formatScenarios(results: readonly ScenarioResult[]): string {
  const lines = ["scenario                                   calls  ok  failed            server runs  lesson"];
  for (const r of results) {
    const failed = r.failed.length === 0 ? "0" : `${r.failed.length} ${[...new Set(r.failed)].join(",")}`;
    lines.push(`${r.name.padEnd(42)} ${String(r.calls).padStart(5)} ${String(r.completed).padStart(3)}  ${failed.padEnd(17)} ${String(r.runs).padStart(11)}  ${r.lesson}`);
  }
  lines.push("", "No transport gives exactly-once across crashes. CSI's answer: make the call idempotent (CreateVolume by name) — see `csi-lab rpc csi`.");
  return lines.join("\n");
}
