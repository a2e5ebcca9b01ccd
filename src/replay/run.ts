/**
 * Playing a plan against a driver: each step's calls are made in order on
 * the process the plan names, with placeholders filled from earlier
 * replies, the kubelet's directories made and removed around them, and
 * the step's checks run after. Everything that happens is reported as an
 * event, so a test can assert on it and a UI can draw it: a step began, a
 * call was made, its reply or status code came back, a check passed or
 * failed, a process restarted.
 *
 * A record keeps what Kubernetes writes into an object's status (a claim's
 * status.capacity after a resize), for later items to test and use; the
 * kubelet's own binds of a raw block device, with its loop device on each,
 * are made and undone around the calls that publish and unpublish it
 * (kubelet-devices.ts).
 *
 * A call that answers other than the plan expects ends the replay (what
 * follows depends on it); a failed check or clean-up is recorded and the
 * replay goes on. Checks sit among the calls where a user would look:
 * a pod reads its volume after NodePublishVolume and before
 * NodeUnpublishVolume.
 */
import { mkdirSync, rmdirSync } from "node:fs";
import type { ServiceError } from "@grpc/grpc-js";
import type { CsiClient } from "../client/csi-client";
import { codeName } from "../csi/errors";
// Proto3 JSON ⇄ message: the JSON-only generated file (buf.gen.yaml), which the driver never loads.
import * as csi from "../gen/json/csi";
import { runCheck } from "./checks";
import type { Process } from "./deployment";
import type { Json, JsonObject } from "./k8s-objects";
import { mapDevice, unmapDevice } from "./kubelet-devices";
import { sha256 } from "./kubelet-paths";
import { describeTest, holds, resolve, type Conditional, type Learnt, type PlannedCall, type PlannedItem, type PlannedRecord, type Save, type Step } from "./steps";

/** The driver a replay talks to. */
export interface ReplayTarget {
  /** the process's CSI client as it is now (a restart makes a new one) */
  client(process: Process): CsiClient;
  /** kill the process and start it again (the node plugin: in a new mount namespace) */
  restart(process: Process): Promise<void>;
  /** whether the volume's data is on the node's disk, when the target can tell */
  onDisk?(volumeId: string): boolean | undefined;
  /** mount points the target made itself under the kubelet directory (the emulated host's shared mounts) */
  ownMounts?: string[];
}

export type ReplayEvent =
  | { type: "step"; step: Step }
  | { type: "call"; step: number; call: PlannedCall; request: Json }
  | { type: "reply"; step: number; call: PlannedCall; code: string; message?: string; reply?: Json; ms: number; ok: boolean }
  | { type: "skipped"; step: number; item: PlannedItem; reason: string }
  | { type: "restart"; step: number; process: Process; ms: number }
  | { type: "check"; step: number; what: string; ok: boolean; detail: string }
  | { type: "record"; step: number; what: string; set: JsonObject }
  | { type: "cleanup"; step: number; path: string; ok: boolean; detail: string }
  /** the kubelet mapped a raw block device for a pod (its bind, and its loop device on it), or unmapped it */
  | { type: "device"; step: number; action: "map" | "unmap"; path: string; loop: string }
  | { type: "done"; ok: boolean; failures: string[] };

export interface RunResult {
  ok: boolean;
  failures: string[];
  learnt: Learnt;
}

export interface RunOptions {
  onEvent?: (e: ReplayEvent) => void;
  /** values learnt earlier (discover's), to carry on */
  learnt?: Learnt;
}

type Method = (req: unknown) => Promise<unknown>;
type MessageFns = { fromJSON(o: unknown): unknown; toJSON(m: unknown): unknown };

const SERVICE_KEY = { Identity: "identity", Controller: "controller", Node: "node", GroupController: "groupController" } as const;

export async function run(steps: readonly Step[], target: ReplayTarget, opts: RunOptions = {}): Promise<RunResult> {
  const learnt: Learnt = opts.learnt ?? new Map();
  const failures: string[] = [];
  const emit = (e: ReplayEvent) => opts.onEvent?.(e);
  let stopped = false;
  for (const step of steps) {
    emit({ type: "step", step });
    for (const item of step.items) {
      const notNow = whyNot(item, learnt);
      if (notNow !== undefined) {
        emit({ type: "skipped", step: step.n, item, reason: notNow });
        continue;
      }
      if (item.type === "check") {
        let check = item.check;
        try {
          check = resolve(check as unknown as Json, learnt) as unknown as typeof check;
          const detail = await runCheck(check, target);
          emit({ type: "check", step: step.n, what: check.what, ok: true, detail });
        } catch (err) {
          failures.push(`step ${step.n} (${step.change}): ${check.what}: ${(err as Error).message}`);
          emit({ type: "check", step: step.n, what: check.what, ok: false, detail: (err as Error).message });
        }
        continue;
      }
      if (item.type === "record") {
        const kept = record(item, learnt);
        if (typeof kept === "string") failures.push(`step ${step.n} (${step.change}): ${item.what}: ${kept}`);
        else emit({ type: "record", step: step.n, what: item.what, set: kept });
        continue;
      }
      if (item.type === "restart") {
        const t0 = Date.now();
        await target.restart(item.process);
        emit({ type: "restart", step: step.n, process: item.process, ms: Date.now() - t0 });
        continue;
      }
      const outcome = await makeCall(step.n, item, target, learnt, emit);
      if (outcome !== undefined) {
        failures.push(`step ${step.n} (${step.change}): ${outcome}`);
        stopped = true;
        break;
      }
      if (item.bindAfter) {
        const { source, target: at } = item.bindAfter;
        const where = String(resolve(at, learnt));
        try {
          emit({ type: "device", step: step.n, action: "map", path: where, loop: mapDevice(String(resolve(source, learnt)), where) });
        } catch (err) {
          failures.push(`step ${step.n} (${step.change}): the kubelet cannot map the device published at ${source} at ${at}: ${(err as Error).message}`);
        }
      }
      for (const dir of (item.rmdirAfter ?? []).map((d) => String(resolve(d, learnt)))) {
        try {
          rmdirSync(dir);
          emit({ type: "cleanup", step: step.n, path: dir, ok: true, detail: "removed" });
        } catch (err) {
          const detail = `the kubelet cannot remove ${dir} after ${item.method}: ${(err as Error).message}`;
          failures.push(`step ${step.n} (${step.change}): ${detail}`);
          emit({ type: "cleanup", step: step.n, path: dir, ok: false, detail });
        }
      }
    }
    if (stopped) break;
  }
  emit({ type: "done", ok: failures.length === 0, failures });
  return { ok: failures.length === 0, failures, learnt };
}

/** Make one call; undefined when it answered as planned, else why not. */
async function makeCall(stepN: number, call: PlannedCall, target: ReplayTarget, learnt: Learnt, emit: (e: ReplayEvent) => void): Promise<string | undefined> {
  let request: JsonObject;
  try {
    request = resolve(call.request, learnt) as JsonObject;
  } catch (err) {
    return `${call.method}: ${(err as Error).message}`;
  }
  for (const dir of call.mkdirBefore ?? []) mkdirSync(String(resolve(dir, learnt)), { recursive: true, mode: 0o750 });
  if (call.unbindBefore) {
    const at = String(resolve(call.unbindBefore, learnt));
    try {
      emit({ type: "device", step: stepN, action: "unmap", path: at, loop: unmapDevice(at) });
    } catch (err) {
      return `the kubelet cannot unmap the device at ${at} before ${call.method}: ${(err as Error).message}`;
    }
  }
  const messages = csi as unknown as Record<string, MessageFns>;
  const requestType = messages[`${call.method}Request`];
  const replyType = messages[`${call.method}Response`];
  const service = target.client(call.process)[SERVICE_KEY[call.service]] as unknown as Record<string, Method>;
  const fn = service[call.method.charAt(0).toLowerCase() + call.method.slice(1)];
  if (!requestType || !replyType || !fn) return `${call.method} is not a CSI ${call.service} RPC`;
  emit({ type: "call", step: stepN, call, request });
  const t0 = Date.now();
  let code = "OK";
  let message: string | undefined;
  let reply: unknown;
  try {
    reply = await fn(requestType.fromJSON(request));
  } catch (err) {
    const e = err as ServiceError;
    code = typeof e.code === "number" ? codeName(e.code) : "UNKNOWN";
    message = e.details ?? e.message;
  }
  const want = call.expect?.code ?? "OK";
  const ok = code === want || code === call.or?.code;
  if (call.or) learnt.set(call.or.learn, code === call.or.code);
  const json = reply === undefined ? undefined : (replyType.toJSON(reply) as Json);
  emit({ type: "reply", step: stepN, call, code, ...(message !== undefined ? { message } : {}), ...(json !== undefined ? { reply: json } : {}), ms: Date.now() - t0, ok });
  if (!ok) {
    const expected = `${want}${call.expect ? ` (${call.expect.because})` : ""}${call.or ? ` or ${call.or.code} (${call.or.because})` : ""}`;
    return `${call.method} on the ${call.process} process answered ${code}${message ? `: ${message}` : ""}; expected ${expected}`;
  }
  if (code === "OK" && call.save) learn(call.save, request, reply as Record<string, unknown>, json ?? {}, learnt);
  return undefined;
}

/** Why an item does not happen now (its condition, Conditional in steps.ts); undefined when it does. */
function whyNot(item: Conditional, learnt: Learnt): string | undefined {
  if (item.onlyIf !== undefined && !holds({ is: item.onlyIf }, learnt)) return `${item.onlyIf} is not true`;
  if (item.unless !== undefined && holds({ is: item.unless }, learnt)) return `${item.unless} is true`;
  if (item.test !== undefined && !holds(item.test, learnt)) return `${describeTest(item.test)} does not hold`;
  return undefined;
}

/** Keep what a record sets: the values kept, or why they cannot be (one not learnt). */
function record(item: PlannedRecord, learnt: Learnt): JsonObject | string {
  let values: JsonObject;
  try {
    values = resolve(item.set, learnt) as JsonObject;
  } catch (err) {
    return (err as Error).message;
  }
  for (const [k, v] of Object.entries(values)) learnt.set(k, v);
  return values;
}

/**
 * What a sidecar keeps of a reply. A PV's capacity is the driver's answer, which may be more than
 * was asked (whole MiB, whole pages): external-provisioner writes CreateVolume's capacity_bytes into
 * the PV (the request's size when it is 0, "unknown"), external-resizer writes ControllerExpandVolume's.
 * (The kubelet's NodeExpandVolume asks for the claim's allocated size, not this: resize.ts.)
 */
function learn(save: Save, request: JsonObject, reply: Record<string, unknown>, json: Json, learnt: Learnt): void {
  if ("volume" in save) {
    const v = reply.volume as { volumeId: string; volumeContext?: Record<string, string>; accessibleTopology?: unknown[]; capacityBytes?: number };
    learnt.set(`volumeId:${save.volume}`, v.volumeId);
    learnt.set(`volumeHash:${save.volume}`, sha256(v.volumeId));
    learnt.set(`volumeContext:${save.volume}`, { ...(v.volumeContext ?? {}) });
    learnt.set(`capacity:${save.volume}`, v.capacityBytes || Number((request.capacityRange as JsonObject | undefined)?.requiredBytes ?? 0));
    // The provisioner makes the PV's node affinity of the accessible topology; none, and no node's snapshotter ever takes its snapshots.
    learnt.set(`noNodeAffinity:${save.volume}`, (v.accessibleTopology ?? []).length === 0);
  } else if ("snapshot" in save) {
    learnt.set(`snapshotId:${save.snapshot}`, (reply.snapshot as { snapshotId: string }).snapshotId);
  } else if ("attachment" in save) {
    learnt.set(`publishContext:${save.attachment}`, { ...((reply.publishContext as Record<string, string> | undefined) ?? {}) });
  } else if ("expansion" in save) {
    learnt.set(`capacity:${save.expansion}`, Number(reply.capacityBytes ?? 0));
    learnt.set(`nodeExpansionRequired:${save.expansion}`, reply.nodeExpansionRequired === true);
  } else {
    learnt.set(`facts:${save.facts}`, json);
  }
}
