/**
 * NodeGetCapabilities: which optional Node RPCs are implemented.
 *
 * STAGE_UNSTAGE_VOLUME makes the kubelet call NodeStageVolume before any
 * publish; GET_VOLUME_STATS and VOLUME_CONDITION turn on usage metrics and
 * health reporting; SINGLE_NODE_MULTI_WRITER lets Kubernetes tell
 * ReadWriteOnce (SINGLE_NODE_MULTI_WRITER) from ReadWriteOncePod
 * (SINGLE_NODE_SINGLE_WRITER); VOLUME_MOUNT_GROUP makes the kubelet hand
 * a pod's fsGroup to the driver instead of changing ownership itself;
 * EXPAND_VOLUME makes it call NodeExpandVolume after a controller
 * expansion that asks for it.
 */
import {
  NodeServiceCapability_RPC_Type as Cap,
  type NodeGetCapabilitiesRequest,
  type NodeGetCapabilitiesResponse,
} from "../gen/csi";
import { defineRpc } from "../server/rpc";

export const NODE_CAPABILITIES: readonly Cap[] = [
  Cap.STAGE_UNSTAGE_VOLUME,
  Cap.GET_VOLUME_STATS,
  Cap.VOLUME_CONDITION,
  Cap.SINGLE_NODE_MULTI_WRITER,
  Cap.VOLUME_MOUNT_GROUP,
  Cap.EXPAND_VOLUME,
];

export const nodeGetCapabilities = defineRpc<NodeGetCapabilitiesRequest, NodeGetCapabilitiesResponse>({
  async handle() {
    return { capabilities: NODE_CAPABILITIES.map((type) => ({ rpc: { type } })) };
  },
});
