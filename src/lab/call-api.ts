/**
 * The call view's server side: one walkthrough, run by the playground's
 * engine (runWalkthrough), sent to the page as a CallStory.
 *
 * The page never makes or encodes a call itself: it asks for one here with
 * the form's choices, and draws what the engine traced — the same steps
 * `csi-lab rpc walkthrough` prints. Calls run one after another, so the
 * timings are not one call's against another's.
 */
import { Playground, type PlaygroundMethod } from "../rpc-demo/call-ids/playground";
import { codecByName } from "../rpc-demo/codecs/codec";
import { parseFaults } from "../rpc-demo/faults/faults";
import { parseJsonText } from "../rpc-demo/codecs/json-codec";
import { transportName, TRANSPORT_NAMES } from "../rpc-demo/transports/transport";
import { callStory } from "../rpc-demo/walkthrough/story";
import { runWalkthrough } from "../rpc-demo/walkthrough/walkthrough";
import type { CallOptionsList, CallStory } from "./protocol";

const PLAYGROUND_METHODS = Object.keys(Playground) as PlaygroundMethod[];

export const FAULT_CHOICES = [
  { spec: "", label: "none" },
  { spec: "drop", label: "drop the first message each way" },
  { spec: "drop,request-only", label: "drop the request" },
  { spec: "drop,reply-only", label: "drop the reply" },
  { spec: "duplicate", label: "duplicate the first message" },
  { spec: "delay=300", label: "delay every message 300 ms" },
  { spec: "delay=3000,reply-only", label: "delay the reply past the deadline" },
  { spec: "crash", label: "crash the server before it replies" },
  { spec: "drop=0.3,seed=7", label: "lose 30% of messages (seeded)" },
];

export function callOptions(driver: string): CallOptionsList {
  return { methods: PLAYGROUND_METHODS, codecs: ["protobuf", "json"], transports: TRANSPORT_NAMES, faults: FAULT_CHOICES, driver };
}

let queue: Promise<unknown> = Promise.resolve();

/**
 * Run one call from the page's query: method, codec, transport, fault,
 * request (proto3 JSON). Async, so that a choice the engine refuses while
 * reading it (an unknown codec, a request that is not JSON) is a rejected
 * promise — the page's 400 — and never an exception thrown into the lab's
 * request handler, which would stop the lab.
 */
export async function runCall(q: URLSearchParams): Promise<CallStory> {
  const method = (q.get("method") ?? "add") as PlaygroundMethod;
  if (!PLAYGROUND_METHODS.includes(method)) throw new Error(`unknown method ${JSON.stringify(method)}`);
  const codec = codecByName(q.get("codec") ?? "protobuf");
  if (codec.name === "ts-proto") throw new Error("the page offers our own codecs: protobuf or json");
  const transport = transportName(q.get("transport") ?? "tcp");
  const faults = parseFaults(q.get("fault") || undefined);
  const text = q.get("request");
  const request = text ? parseJsonText(text) : undefined;
  const timeoutMs = Number(q.get("timeout") ?? 2000);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 10_000) throw new Error("timeout must be 1-10000 ms");
  const next = queue.then(async () => callStory(await runWalkthrough({ transport, codec, faults, method, request, timeoutMs })) satisfies CallStory);
  queue = next.catch(() => undefined);
  return next;
}
