/**
 * NodePublishVolume: put a staged volume where one pod will see it.
 *
 * The staging path is bound at the pod's target path; `readonly` and the
 * capability's mount flags become per-mount flags of that bind, so one
 * volume can be read-write for one pod and read-only for another. A pod's
 * fsGroup (volume_mount_group) is applied to the volume's root
 * (mount-group.ts), and a read-only attachment (attachment-check.ts) or a
 * reader-only access mode (SINGLE_NODE_READER_ONLY, MULTI_NODE_READER_ONLY)
 * makes the mount read-only. (A block volume's device is bound onto a target
 * file instead, and a read-only one gets a read-only device:
 * src/backends/hostpath/layouts/block.ts.)
 *
 * Repeating the call with the same arguments is a no-op; different
 * arguments on the same target are ALREADY_EXISTS. Access modes that allow
 * one workload (SINGLE_NODE_WRITER, SINGLE_NODE_READER_ONLY,
 * SINGLE_NODE_SINGLE_WRITER = Kubernetes' ReadWriteOncePod) refuse a
 * second target with FAILED_PRECONDITION, as the spec's table says
 * (single-writer.ts).
 *
 * With volume_context "csi.storage.k8s.io/ephemeral": "true" the call is
 * for an inline volume, which has no staging path: the backend that keeps
 * inline volumes makes it here and binds it (ephemeral.ts). How a staged
 * volume is bound is its backend's (src/backends); the target must lie
 * inside the kubelet directory (node-path.ts).
 */
import type { NodePublishVolumeRequest, NodePublishVolumeResponse } from "../gen/csi";
import { READ_ONLY_MODES, toCapability } from "../csi/capabilities";
import { failedPrecondition, invalidArgument, notFound } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { checkAttachment } from "./attachment-check";
import { isEphemeralRequest, nodeLockKeys } from "./ephemeral";
import { nodePath, placeKey } from "./node-path";

export const nodePublishVolume = defineRpc<NodePublishVolumeRequest, NodePublishVolumeResponse>({
  // An inline volume is also locked under its store ID.
  lockKeys: (req, driver) => [...nodeLockKeys(driver, req.volumeId), ...placeKey(req.targetPath)],

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const target = nodePath(driver, req.targetPath, "target_path");
    toCapability(req.volumeCapability, "volume_capability"); // validation first: INVALID_ARGUMENT before NOT_FOUND
    const publishContext = checkMap(req.publishContext, "publish_context");
    const volumeContext = checkMap(req.volumeContext, "volume_context");
    checkMap(req.secrets, "secrets");
    const readonly = req.readonly === true;

    if (isEphemeralRequest(volumeContext)) {
      const ephemeral = driver.backends.ephemeral;
      if (!ephemeral) throw invalidArgument("this driver offers no ephemeral inline volumes");
      if (req.stagingTargetPath) throw invalidArgument("an ephemeral inline volume is not staged: staging_target_path must be empty");
      const owner = driver.backends.forId(ephemeral.storeId(volumeId))!;
      const cap = owner.node.capability(driver, volumeId, req.volumeCapability);
      await ephemeral.publish(driver, { volumeId, target, cap, readonly, volumeContext });
      return {};
    }

    const backend = driver.backends.forId(volumeId);
    if (!backend) throw notFound(`volume ${volumeId} does not exist on this node`);
    const cap = backend.node.capability(driver, volumeId, req.volumeCapability);
    if (!req.stagingTargetPath) throw failedPrecondition("staging_target_path is required: this driver stages volumes (STAGE_UNSTAGE_VOLUME)");
    const staging = nodePath(driver, req.stagingTargetPath, "staging_target_path");
    const attachment = checkAttachment(driver, volumeId, publishContext);
    // A reader-only access mode "can only be published as read only" (the spec's words), whatever readonly says:
    // the kubelet sends readonly false for a ReadOnlyMany claim a pod does not itself mount readOnly.
    const forcedReadOnly = attachment.readonly || READ_ONLY_MODES.has(cap.accessMode);
    await backend.node.publish(driver, { volumeId, staging, target, cap, readonly, forcedReadOnly, volumeContext });
    return {};
  },
});
