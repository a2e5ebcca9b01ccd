/**
 * The planner's working parts shared by the controllers it plays
 * (provisioner, snapshotter, resizer in plan.ts; the kubelet in
 * kubelet.ts): the step being built, the cluster state, what the driver
 * said about itself, and the two translations every sidecar makes — a
 * Kubernetes access mode into a CSI one, a volume's mode and mount options
 * into a CSI volume capability.
 */
import { ClusterState } from "./cluster-state";
import type { Deployment, Sidecar } from "./deployment";
import type { Check, Conditional, PlannedCall, Step, Test } from "./steps";
import type { JsonObject } from "./k8s-objects";

/** What the driver told the sidecars and the kubelet when they started (identity.ts: discover). */
export interface DriverFacts {
  /** the Kubernetes node the replay's node plugin runs on */
  nodeName: string;
  /** NodeGetInfo's node_id (what ControllerPublishVolume is told) */
  nodeId: string;
  /** NodeGetInfo's accessible_topology segments */
  topology: Record<string, string>;
  /** capability names: ControllerGetCapabilities, NodeGetCapabilities */
  controllerCaps: string[];
  nodeCaps: string[];
}

export interface PlanOptions {
  /** the kubelet directory on the node, as the driver sees it */
  kubeletDir: string;
  /** the namespace the example runs in */
  namespace: string;
  /** a path in a StorageClass parameter (`share`) as the replay's driver sees it; identity in a real cluster */
  driverPath?: (p: string) => string;
}

/** Both conditions: the inner one's onlyIf and unless where the outer has none, the rest as a test. */
function both(outer: Conditional, inner: Conditional): Conditional {
  const tests: Test[] = [];
  const out: Conditional = {};
  for (const c of [outer, inner]) {
    if (c.onlyIf !== undefined) {
      if (out.onlyIf === undefined) out.onlyIf = c.onlyIf;
      else if (out.onlyIf !== c.onlyIf) tests.push({ is: c.onlyIf });
    }
    if (c.unless !== undefined) {
      if (out.unless === undefined) out.unless = c.unless;
      else if (out.unless !== c.unless) tests.push({ not: { is: c.unless } });
    }
    if (c.test) tests.push(c.test);
  }
  if (tests.length > 0) out.test = tests.length === 1 ? tests[0]! : { all: tests };
  return out;
}

/** The provisioner's identity, which it records in each PV's volume attributes. */
export const PROVISIONER_IDENTITY = "1700000000000-replay-csi-lab.example.org";

export class Planning {
  readonly state = new ClusterState();
  readonly steps: Step[] = [];
  private current: Step | undefined;

  constructor(
    readonly deployment: Deployment,
    readonly facts: DriverFacts,
    readonly opts: PlanOptions,
  ) {
    for (const o of deployment.objects) this.state.classes.set(`${o.kind}/${String(o.metadata.name)}`, o);
  }

  get driverName(): string {
    return this.deployment.driverName;
  }

  step(change: string, file?: string): Step {
    this.current = { n: this.steps.length + 1, change, ...(file ? { file } : {}), notes: [], items: [] };
    this.steps.push(this.current);
    return this.current;
  }

  private get cur(): Step {
    if (!this.current) throw new Error("no step started");
    return this.current;
  }

  note(text: string): void {
    this.cur.notes.push(text);
  }

  call(c: Omit<PlannedCall, "type">): void {
    this.cur.items.push({ type: "call", ...this.condition, ...c });
  }

  restart(why: string): void {
    this.cur.items.push({ type: "restart", process: "node", why, ...this.condition });
  }

  check(c: Check): void {
    this.cur.items.push({ type: "check", check: c, ...this.condition });
  }

  /** What Kubernetes writes into an object's status here (PlannedRecord in steps.ts). */
  record(what: string, set: JsonObject): void {
    this.cur.items.push({ type: "record", what, set, ...this.condition });
  }

  /** Plan `body`'s items to happen only as `condition` says (Conditional in steps.ts), and as any outer `when` says. */
  when(condition: Conditional, body: () => void): void {
    const outer = this.condition;
    this.condition = both(outer, condition);
    try {
      body();
    } finally {
      this.condition = outer;
    }
  }

  private condition: Conditional = {};

  /** A learnt-value key of its own for a decision made at this point of the plan ("resizes:pvc-1@7.2"): record it, test it as `${key}`. */
  decision(kind: string, name: string): string {
    return `${kind}:${name}@${this.steps.length}.${++this.decisions}`;
  }

  private decisions = 0;

  /** A Kubernetes access mode as CSI names it, for the controller or node side's capabilities. */
  accessMode(mode: string, side: "controller" | "node"): string {
    const caps = side === "controller" ? this.facts.controllerCaps : this.facts.nodeCaps;
    const singleNode = caps.includes("SINGLE_NODE_MULTI_WRITER");
    switch (mode) {
      case "ReadWriteOnce":
        return singleNode ? "SINGLE_NODE_MULTI_WRITER" : "SINGLE_NODE_WRITER";
      case "ReadWriteOncePod":
        return singleNode ? "SINGLE_NODE_SINGLE_WRITER" : "SINGLE_NODE_WRITER";
      case "ReadOnlyMany":
        return "MULTI_NODE_READER_ONLY";
      case "ReadWriteMany":
        return "MULTI_NODE_MULTI_WRITER";
      default:
        throw new Error(`unknown access mode ${mode}`);
    }
  }

  /** A CSI VolumeCapability (protobuf JSON). */
  capability(v: { block: boolean; fsType: string; mountOptions: string[]; mode: string; mountGroup?: string }): JsonObject {
    const accessMode = { mode: v.mode };
    if (v.block) return { block: {}, accessMode };
    return { mount: { fsType: v.fsType, mountFlags: v.mountOptions, volumeMountGroup: v.mountGroup ?? "" }, accessMode };
  }

  driverPath(p: string): string {
    return this.opts.driverPath ? this.opts.driverPath(p) : p;
  }
}

/** A call a sidecar makes, to the process whose pod holds it (deployment.ts routes); a note where none is deployed. */
export function sidecarCall(p: Planning, sidecar: Sidecar, method: string, why: string, request: JsonObject, extra: Partial<Parameters<Planning["call"]>[0]> = {}): void {
  const process = p.deployment.routes[sidecar];
  if (!process) {
    p.note(`no ${sidecar} is deployed: nothing calls ${method}`);
    return;
  }
  p.call({ method, service: "Controller", process, caller: sidecar, why, request, ...extra });
}
