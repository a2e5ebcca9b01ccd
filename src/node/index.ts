// The Node service: runs on every node; the kubelet calls it to mount volumes.
import type { NodeDefinition } from "../gen/csi";
import type { RpcTable } from "../server/rpc";
import { nodeExpandVolume } from "./node-expand-volume";
import { nodeGetCapabilities } from "./node-get-capabilities";
import { nodeGetInfo } from "./node-get-info";
import { nodeGetVolumeStats } from "./node-get-volume-stats";
import { nodePublishVolume } from "./node-publish-volume";
import { nodeStageVolume } from "./node-stage-volume";
import { nodeUnpublishVolume } from "./node-unpublish-volume";
import { nodeUnstageVolume } from "./node-unstage-volume";

export const nodeRpcs: RpcTable<typeof NodeDefinition> = {
  nodeStageVolume,
  nodeUnstageVolume,
  nodePublishVolume,
  nodeUnpublishVolume,
  nodeGetVolumeStats,
  nodeExpandVolume,
  nodeGetCapabilities,
  nodeGetInfo,
};
