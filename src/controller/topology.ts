/**
 * Topology: where a volume can be used.
 *
 * Kubernetes passes the nodes a pod could run on as `requisite` topologies
 * (and its choice as `preferred`). A hostPath volume can only ever be made
 * on the node that runs this controller, so if that node is not among the
 * requisite ones the honest answer is RESOURCE_EXHAUSTED: "not here".
 *
 * A shared volume is reachable from every node that can reach its share.
 * Every node plugin allowed a share says so with a second key
 * (`<driver>/shared: reachable`), and a shared volume is reachable from
 * that segment: its PersistentVolume then has a node affinity that every
 * such node matches. Kubernetes needs one to take a snapshot of it — the
 * snapshot-controller hands a snapshot to the csi-snapshotter of a node
 * that the volume's node affinity matches, and to none without one.
 */
import type { Topology, TopologyRequirement } from "../gen/csi";
import type { Driver } from "../server/driver";

/** The segment shared volumes are reachable from, and that nodes allowed a share report. */
export function sharedSegment(driver: Driver): Record<string, string> {
  return { [`${driver.config.driverName}/shared`]: "reachable" };
}

export function matchesThisNode(t: Topology | undefined, driver: Driver): boolean {
  return t?.segments?.[driver.topologyKey] === driver.config.nodeId;
}

/**
 * Can a volume reachable from `accessible` (its accessible_topology; none:
 * from everywhere) serve a request whose requisite topologies are these?
 * It must be reachable from at least one of them: a segment of it whose
 * every key and value that requisite topology has too.
 */
export function reachableFromRequisite(accessible: readonly Record<string, string>[], req: TopologyRequirement | undefined): boolean {
  const requisite = req?.requisite ?? [];
  if (requisite.length === 0 || accessible.length === 0) return true;
  return accessible.some((seg) => requisite.some((t) => Object.entries(seg).every(([k, v]) => t.segments?.[k] === v)));
}

/** undefined when this node may hold the volume, else the reason it may not. */
export function topologyProblem(req: TopologyRequirement | undefined, driver: Driver): string | undefined {
  // A volume made here is reachable from this node's segment alone: the same rule as for one that exists.
  if (reachableFromRequisite([{ [driver.topologyKey]: driver.config.nodeId }], req)) return undefined;
  return `volumes of this driver live on node ${driver.config.nodeId}, which is not among the requisite topologies`;
}
