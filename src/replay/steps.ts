/**
 * What a replay is made of: steps, each one change to Kubernetes objects
 * (a claim created, a pod deleted, the node plugin restarted) and the CSI
 * calls that change causes, in order, with the process that serves each.
 *
 * A plan is plain JSON, so a test can print it and a browser can show it
 * before anything runs. Requests are CSI messages in the protobuf JSON
 * mapping (camelCase fields, enum names). What only the driver knows —
 * the volume ID CreateVolume returns, the snapshot ID, the volume context
 * — appears as a placeholder, `${volumeId:pvc-…}`, filled in from earlier
 * replies when the call is made (resolve below). A map entry whose key is
 * "..." is spread into the map: `{"...": "${volumeContext:pvc-1}", "k": "v"}`.
 * What Kubernetes writes into a claim's status (its status.capacity after
 * a resize) is a record, learnt the same way; and where what Kubernetes
 * does depends on such values — is the request above status.capacity? —
 * the items carry a test of them, made when the run reaches them.
 */
import type { Json, JsonObject } from "./k8s-objects";
import type { Process } from "./deployment";

export type Caller = "csi-provisioner" | "csi-snapshotter" | "csi-resizer" | "csi-attacher" | "kubelet" | "node-driver-registrar";

/** What a reply is remembered as, for later placeholders. */
export type Save =
  | { volume: string } // CreateVolume → volumeId/volumeContext/capacity of PV <name>
  | { snapshot: string } // CreateSnapshot → snapshotId of content <name>
  | { expansion: string } // ControllerExpandVolume → capacity and nodeExpansionRequired of PV <name>
  | { attachment: string } // ControllerPublishVolume → publishContext of PV <name>
  | { facts: "nodeInfo" | "nodeCapabilities" | "controllerCapabilities" }; // what the sidecars learn when they start

/**
 * An item that happens only as earlier replies decided: `onlyIf` when the
 * placeholder is true, `unless` when it is not (a value not learnt counts
 * as false), and `test` when it holds; all of those given must hold.
 */
export interface Conditional {
  onlyIf?: string;
  unless?: string;
  test?: Test;
}

/**
 * A test of values known when the item is reached (placeholders, or
 * literals): what Kubernetes compares at that moment, such as a claim's
 * request and its status.capacity, which depend on the driver's answers.
 * `above` holds when the first number is greater than the second; a value
 * not learnt makes it false, as it does `is`.
 */
export type Test = { is: string } | { not: Test } | { all: Test[] } | { any: Test[] } | { above: [Json, Json] };

/** Whether `test` holds with what has been learnt. */
export function holds(test: Test, learnt: Learnt): boolean {
  if ("is" in test) return tryResolve(test.is, learnt) === true;
  if ("not" in test) return !holds(test.not, learnt);
  if ("all" in test) return test.all.every((t) => holds(t, learnt));
  if ("any" in test) return test.any.some((t) => holds(t, learnt));
  const [a, b] = test.above.map((v) => tryResolve(v, learnt));
  return typeof a === "number" && typeof b === "number" && a > b;
}

/** A test in words, for a skipped item's reason. */
export function describeTest(test: Test): string {
  if ("is" in test) return test.is;
  if ("not" in test) return `not (${describeTest(test.not)})`;
  if ("all" in test) return test.all.map(describeTest).join(" and ");
  if ("any" in test) return `(${test.any.map(describeTest).join(" or ")})`;
  return `${JSON.stringify(test.above[0])} > ${JSON.stringify(test.above[1])}`;
}

function tryResolve(value: Json, learnt: Learnt): Json | undefined {
  try {
    return resolve(value, learnt);
  } catch {
    return undefined; // not learnt
  }
}

export interface PlannedCall extends Conditional {
  type: "call";
  /** the CSI RPC, as the spec names it: "CreateVolume" */
  method: string;
  service: "Identity" | "Controller" | "Node" | "GroupController";
  process: Process;
  caller: Caller;
  /** one line: why this caller makes this call now */
  why: string;
  request: JsonObject;
  /** an error code this call must answer with, and why that is right */
  expect?: { code: string; because: string };
  /** another answer that is also right, and the placeholder key that records whether it came (later items depend on it) */
  or?: { code: string; because: string; learn: string };
  save?: Save;
  /** directories the kubelet makes before the call, and removes after it succeeded */
  mkdirBefore?: string[];
  rmdirAfter?: string[];
  /**
   * A raw block volume's device, which the kubelet binds at a place of its own once NodePublishVolume
   * succeeded (`source`: the target path the driver published it at), attaching a loop device to the bind,
   * and unmaps before NodeUnpublishVolume (the loop device detached, the bind unmounted, its file removed):
   * MapBlockVolume and UnmapBlockVolume (kubelet-devices.ts)
   */
  bindAfter?: { source: string; target: string };
  unbindBefore?: string;
}

/**
 * What Kubernetes writes into an object's status at this point (a claim's
 * status.capacity, allocatedResources, its resize status), kept as learnt
 * values for later tests and requests: each of `set`'s values is resolved
 * when the item is reached.
 */
export interface PlannedRecord extends Conditional {
  type: "record";
  what: string;
  set: JsonObject;
}

/** The node plugin killed and started again (a new container: a new mount namespace that inherits the old mounts). */
export interface PlannedRestart extends Conditional {
  type: "restart";
  process: Process;
  why: string;
}

/** What a user relies on, checked at its place among the calls. */
export type Check =
  | { type: "data"; what: string; pod: string; path: string; block: boolean; expect: FileEntry[]; write?: FileEntry }
  /** `askedBytes`: the size the claim asked for (a placeholder until the run), of which statfs must show nine tenths */
  | { type: "size"; what: string; path: string; askedBytes: number | string }
  | { type: "volume"; what: string; volumeId: string; exists: boolean }
  | { type: "group"; what: string; path: string; gid: number }
  | { type: "mode"; what: string; path: string; mode: number }
  | { type: "no-mounts"; what: string; under: string };

/** A file a pod wrote (for a block volume: bytes at an offset of the device). */
export interface FileEntry {
  name: string;
  content: string;
  offset: number;
}

export interface Step {
  n: number;
  /** the Kubernetes side: "create Pod csi-lab-ex-pvc-pod/hello-writer" */
  change: string;
  /** the example file it came from, if any */
  file?: string;
  /** what Kubernetes does about it, in a sentence or two */
  notes: string[];
  items: PlannedItem[];
}

export interface PlannedCheck extends Conditional {
  type: "check";
  check: Check;
}

export type PlannedItem = PlannedCall | PlannedRestart | PlannedCheck | PlannedRecord;

/** Values learnt from replies: "volumeId:pvc-1" → "hp-…". */
export type Learnt = Map<string, Json>;

const WHOLE = /^\$\{([A-Za-z]+:[^}]+)\}$/;
const INNER = /\$\{([A-Za-z]+:[^}]+)\}/g;

/** Fill the placeholders of `value` from `learnt`; throws naming the first one not known yet. */
export function resolve(value: Json, learnt: Learnt): Json {
  if (typeof value === "string") {
    const whole = WHOLE.exec(value);
    if (whole) return known(whole[1]!, learnt);
    return value.replace(INNER, (_, key: string) => {
      const v = known(key, learnt);
      if (typeof v !== "string" && typeof v !== "number") throw new Error(`placeholder \${${key}} is not a string`);
      return String(v);
    });
  }
  if (Array.isArray(value)) return value.map((v) => resolve(v, learnt));
  if (value !== null && typeof value === "object") {
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const r = resolve(v, learnt);
      if (k === "...") {
        if (r === null || typeof r !== "object" || Array.isArray(r)) throw new Error(`"..." must resolve to a map, got ${JSON.stringify(r)}`);
        Object.assign(out, r);
      } else out[k] = r;
    }
    return out;
  }
  return value;
}

function known(key: string, learnt: Learnt): Json {
  const v = learnt.get(key);
  if (v === undefined) throw new Error(`\${${key}} is not known: the call that returns it has not succeeded`);
  return v;
}

/**
 * volumeHash is the SHA-256 of the volume ID in hex, which the kubelet names staging directories by.
 * capacity is the PV's spec.capacity in bytes: what the driver answered, not what the claim asked for.
 * The claim bound to PV <name> (records, sidecars.ts): request is its spec.resources.requests as the
 * API server accepted it, claimCapacity its status.capacity, allocated its status.allocatedResources
 * (the size csi-resizer last asked the controller for), resizePending whether its resize waits for
 * the node (NodeResizePending).
 */
export function placeholder(
  kind:
    | "volumeId"
    | "volumeHash"
    | "volumeContext"
    | "capacity"
    | "publishContext"
    | "snapshotId"
    | "nodeExpansionRequired"
    | "noNodeAffinity"
    | "request"
    | "claimCapacity"
    | "allocated"
    | "resizePending",
  name: string,
): string {
  return `\${${kind}:${name}}`;
}
