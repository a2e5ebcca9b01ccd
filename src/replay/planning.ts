/**
 * The planner's working parts shared by the controllers it plays
 * (provisioner, snapshotter, resizer in plan.ts; the kubelet in
 * kubelet.ts): the step being built, the cluster state, what the driver
 * said about itself, and the two translations every sidecar makes — a
 * Kubernetes access mode into a CSI one, a volume's mode and mount options
 * into a CSI volume capability.
 */
import { ClusterState } from "./cluster-state";
import type { Deployment } from "./deployment";
import type { Check, Conditional, PlannedCall, Step } from "./steps";
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

  /** Plan `body`'s items to happen only as `condition` says (Conditional in steps.ts). */
  when(condition: Conditional, body: () => void): void {
    const outer = this.condition;
    this.condition = { ...outer, ...condition };
    try {
      body();
    } finally {
      this.condition = outer;
    }
  }

  private condition: Conditional = {};

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
