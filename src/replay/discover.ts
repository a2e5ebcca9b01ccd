/**
 * Before any claim: the sidecars and the kubelet meet the driver.
 *
 * Every sidecar asks the driver it sits beside who it is and what it can
 * do when it starts (GetPluginInfo, GetPluginCapabilities,
 * ControllerGetCapabilities), and adapts: the provisioner passes topology
 * only to a driver that has it, and maps ReadWriteOnce to
 * SINGLE_NODE_MULTI_WRITER only for a driver that knows that mode. The
 * node-driver-registrar registers the node plugin with the kubelet, which
 * asks NodeGetInfo (the node's ID and topology) and, later,
 * NodeGetCapabilities. The planner needs the same answers, so the replay
 * begins with these calls, as step 0.
 */
import type { Deployment, Process } from "./deployment";
import type { Json } from "./k8s-objects";
import type { DriverFacts } from "./planning";
import { run, type ReplayTarget, type RunOptions } from "./run";
import type { PlannedCall, Step } from "./steps";

export function discoveryStep(deployment: Deployment): Step {
  const call = (c: Omit<PlannedCall, "type" | "request">): PlannedCall => ({ type: "call", request: {}, ...c });
  const items: PlannedCall[] = [
    call({ method: "GetPluginInfo", service: "Identity", process: "node", caller: "node-driver-registrar", why: "the driver's name, to register its socket with the kubelet" }),
    call({ method: "NodeGetInfo", service: "Node", process: "node", caller: "kubelet", why: "plugin registration: the node's ID and topology", save: { facts: "nodeInfo" } }),
    call({ method: "NodeGetCapabilities", service: "Node", process: "node", caller: "kubelet", why: "staging, expansion, fsGroup, access modes", save: { facts: "nodeCapabilities" } }),
  ];
  const provisioner = deployment.routes["csi-provisioner"] ?? "node";
  const processes = new Set<Process>([provisioner, ...Object.values(deployment.routes).filter((r): r is Process => r !== undefined)]);
  for (const process of processes) {
    const caller = process === provisioner ? "csi-provisioner" : "csi-resizer";
    items.push(
      call({ method: "GetPluginCapabilities", service: "Identity", process, caller, why: `the ${process} process: controller service, topology, expansion` }),
      call({
        method: "ControllerGetCapabilities",
        service: "Controller",
        process,
        caller,
        why: `the ${process} process: which controller calls it answers`,
        ...(process === provisioner ? { save: { facts: "controllerCapabilities" as const } } : {}),
      }),
    );
  }
  return { n: 0, change: "the driver's pods start: the sidecars and the kubelet meet the driver", notes: [], items };
}

/** Run step 0 and read the facts the planner needs from its replies. */
export async function discover(deployment: Deployment, nodeName: string, target: ReplayTarget, opts: RunOptions = {}): Promise<DriverFacts> {
  const result = await run([discoveryStep(deployment)], target, opts);
  if (!result.ok) throw new Error(`the driver did not answer its sidecars: ${result.failures.join("; ")}`);
  const json = (key: string) => result.learnt.get(`facts:${key}`) as Record<string, Json> | undefined;
  const caps = (key: string) =>
    ((json(key)?.capabilities ?? []) as { rpc?: { type?: string } }[]).map((c) => c.rpc?.type).filter((t): t is string => typeof t === "string");
  const topology = ((json("nodeInfo")?.accessibleTopology as { segments?: Record<string, string> } | undefined)?.segments ?? {}) as Record<string, string>;
  const nodeId = String(json("nodeInfo")?.nodeId ?? nodeName);
  return { nodeName, nodeId, topology, nodeCaps: caps("nodeCapabilities"), controllerCaps: caps("controllerCapabilities") };
}
