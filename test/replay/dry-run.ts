/**
 * Test helper: a plan played against an imagined driver, with no driver
 * and nothing mounted — conditions and records as run.ts plays them, each
 * call answered as `driver` says (a volume's ID and capacity, an
 * expansion's). So a plan test can ask what Kubernetes would call for a
 * driver that answers so, where the plan itself only holds tests of
 * answers not known yet.
 */
import type { Json, JsonObject } from "../../src/replay/k8s-objects";
import { holds, resolve, type Conditional, type Learnt, type PlannedCall, type Step } from "../../src/replay/steps";

export interface ImaginedDriver {
  /** capacity_bytes for a CreateVolume or ControllerExpandVolume asking for `required` bytes (default: exactly that) */
  capacity?: (required: number) => number;
  /** ControllerExpandVolume's node_expansion_required (default true) */
  nodeExpansionRequired?: boolean;
}

export interface DryCall {
  step: Step;
  call: PlannedCall;
  /** the request with its placeholders filled */
  request: JsonObject;
}

export function dryRun(steps: readonly Step[], driver: ImaginedDriver = {}): { calls: DryCall[]; learnt: Learnt } {
  const capacity = driver.capacity ?? ((n: number) => n);
  const learnt: Learnt = new Map();
  const calls: DryCall[] = [];
  for (const step of steps) {
    for (const item of step.items) {
      if (!applies(item, learnt)) continue;
      if (item.type === "record") {
        for (const [k, v] of Object.entries(resolve(item.set, learnt) as JsonObject)) learnt.set(k, v);
      } else if (item.type === "call") {
        const request = resolve(item.request, learnt) as JsonObject;
        calls.push({ step, call: item, request });
        if (item.or) learnt.set(item.or.learn, false);
        const required = Number((request.capacityRange as JsonObject | undefined)?.requiredBytes ?? 0);
        const save = item.save;
        if (!save) continue;
        if ("volume" in save) {
          const id = `vol-${save.volume}`;
          const answers: [string, Json][] = [
            ["volumeId", id],
            ["volumeHash", `hash-of-${id}`],
            ["volumeContext", {}],
            ["capacity", capacity(required)],
            ["noNodeAffinity", false],
          ];
          for (const [kind, v] of answers) learnt.set(`${kind}:${save.volume}`, v);
        } else if ("expansion" in save) {
          learnt.set(`capacity:${save.expansion}`, capacity(required));
          learnt.set(`nodeExpansionRequired:${save.expansion}`, driver.nodeExpansionRequired ?? true);
        } else if ("snapshot" in save) {
          learnt.set(`snapshotId:${save.snapshot}`, `snap-${save.snapshot}`);
        } else if ("attachment" in save) {
          learnt.set(`publishContext:${save.attachment}`, {});
        }
      }
    }
  }
  return { calls, learnt };
}

function applies(item: Conditional, learnt: Learnt): boolean {
  if (item.onlyIf !== undefined && !holds({ is: item.onlyIf }, learnt)) return false;
  if (item.unless !== undefined && holds({ is: item.unless }, learnt)) return false;
  return item.test === undefined || holds(item.test, learnt);
}

/** "Method bytes" per call in a step, for assertions: "ControllerExpandVolume 2147483648", "NodePublishVolume". */
export function callsIn(calls: DryCall[], change: string): string[] {
  return calls
    .filter((c) => c.step.change === change)
    .map((c) => {
      const bytes = (c.request.capacityRange as JsonObject | undefined)?.requiredBytes;
      return bytes === undefined || c.call.method === "CreateVolume" ? c.call.method : `${c.call.method} ${String(bytes)}`;
    });
}
