/**
 * NodeGetInfo: this node's identity for the CO.
 *
 * node-driver-registrar asks once at start-up and tells the kubelet, which
 * records the node ID on the CSINode object; the topology segment becomes
 * a node label, used by the scheduler to put pods where their hostPath
 * volumes are — and, on nodes allowed a share, where shared volumes can be
 * reached.
 */
import type { NodeGetInfoRequest, NodeGetInfoResponse } from "../gen/csi";
import { nodeTopology } from "../controller/volume-view";
import { sharedSegment } from "../controller/topology";
import { defineRpc } from "../server/rpc";

export const nodeGetInfo = defineRpc<NodeGetInfoRequest, NodeGetInfoResponse>({
  async handle(_req, { driver }) {
    return {
      nodeId: driver.config.nodeId,
      maxVolumesPerNode: driver.config.maxVolumesPerNode,
      // A node allowed a share also says it can reach shared volumes (controller/topology.ts).
      accessibleTopology: { segments: { ...nodeTopology(driver).segments, ...(driver.config.allowedShares.length > 0 ? sharedSegment(driver) : {}) } },
    };
  },
});
