/**
 * NodeStageVolume: make a volume available on this node, once.
 *
 * Staging is the per-node half of mounting. For a disk it is where the
 * device gets formatted and mounted; every pod on the node then gets a
 * cheap bind mount of that one global mount. What is put at the staging
 * path is the volume's backend's business (src/backends: a bound
 * directory, an image's file system, a loop device, a share's
 * subdirectory, a tmpfs). Calling it again for the same volume and path
 * is a no-op; a different volume or capability at that path is
 * ALREADY_EXISTS. The staging path must lie inside the kubelet directory
 * (node-path.ts). With attach on, the volume must be attached to this
 * node, and a read-only attachment is staged read-only
 * (attachment-check.ts); a pod's fsGroup (volume_mount_group) is applied
 * to the volume's root (mount-group.ts).
 */
import type { NodeStageVolumeRequest, NodeStageVolumeResponse } from "../gen/csi";
import { toCapability } from "../csi/capabilities";
import { notFound } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { volumeKey } from "../controller/volume-view";
import { defineRpc } from "../server/rpc";
import { checkAttachment } from "./attachment-check";
import { nodePath, placeKey } from "./node-path";

export const nodeStageVolume = defineRpc<NodeStageVolumeRequest, NodeStageVolumeResponse>({
  lockKeys: (req) => [...volumeKey(req.volumeId), ...placeKey(req.stagingTargetPath)],

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const staging = nodePath(driver, req.stagingTargetPath, "staging_target_path");
    toCapability(req.volumeCapability, "volume_capability"); // validation first: INVALID_ARGUMENT before NOT_FOUND
    const backend = driver.backends.forId(volumeId);
    if (!backend) throw notFound(`volume ${volumeId} does not exist on this node`);
    const cap = backend.node.capability(driver, volumeId, req.volumeCapability);
    const publishContext = checkMap(req.publishContext, "publish_context");
    const volumeContext = checkMap(req.volumeContext, "volume_context");
    checkMap(req.secrets, "secrets");
    const { readonly } = checkAttachment(driver, volumeId, publishContext);
    await backend.node.stage(driver, { volumeId, staging, cap, readonly, volumeContext });
    return {};
  },
});
