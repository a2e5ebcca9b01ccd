/**
 * ControllerPublishVolume: attach a volume to a node.
 *
 * For a network disk this is the step that makes the disk appear on a
 * machine; the CO calls it before NodeStageVolume on that node, and its
 * VolumeAttachment objects in Kubernetes mirror the answer. A hostPath
 * volume is already on the only disk it can be on, so attaching it is pure
 * bookkeeping — but bookkeeping the CO relies on: which node holds which
 * volume (attachments.ts, kept on disk), the per-node attach limit, one
 * node at a time for single-node volumes, a read-only attachment that the
 * node honours, and a publish_context the node checks.
 *
 * Offered only with --enable-attach; without it the CO skips attach
 * entirely (CSIDriver attachRequired: false), which is the cheaper choice
 * for a node-local driver.
 */
import type { ControllerPublishVolumeRequest, ControllerPublishVolumeResponse } from "../gen/csi";
import { MULTI_NODE_MODES, sameCapability, toCapability, unsupportedReason } from "../csi/capabilities";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "../csi/errors";
import { nodeExists, publishContextFor } from "../csi/publish-context";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { requireAttachEnabled } from "./attach";
import { lookUp, volumeKey } from "./volume-view";

export const controllerPublishVolume = defineRpc<ControllerPublishVolumeRequest, ControllerPublishVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    requireAttachEnabled(driver, "ControllerPublishVolume");
    const volumeId = checkToken(req.volumeId, "volume_id");
    const nodeId = checkToken(req.nodeId, "node_id");
    const cap = toCapability(req.volumeCapability, "volume_capability");
    checkMap(req.volumeContext, "volume_context");
    checkMap(req.secrets, "secrets");
    const readonly = req.readonly === true;

    const { backend, record } = await lookUp(driver, volumeId);
    if (!record) throw notFound(`volume ${volumeId} does not exist`);
    if (!nodeExists(driver, nodeId)) {
      throw notFound(`node ${nodeId} does not exist for this driver; its volumes can only be attached to node ${driver.config.nodeId}`);
    }
    const why = unsupportedReason(cap, backend!.profile(record));
    if (why) throw invalidArgument(why);

    const current = driver.attachments.of(volumeId);
    const here = current.find((a) => a.nodeId === nodeId);
    if (here) {
      if (here.readonly !== readonly || !sameCapability(here.capability, cap)) {
        throw alreadyExists(
          `volume ${volumeId} is already attached to node ${nodeId} ${here.readonly ? "read-only" : "read-write"} ` +
            `with a different capability or readonly flag; detach it first`,
        );
      }
      return { publishContext: publishContextFor(nodeId, here.readonly) };
    }
    const elsewhere = current.filter((a) => a.nodeId !== nodeId);
    if (elsewhere.length > 0 && !MULTI_NODE_MODES.has(cap.accessMode)) {
      throw failedPrecondition(
        `volume ${volumeId} is attached to node ${elsewhere.map((a) => a.nodeId).join(", ")}; ` +
          `a single-node volume must be detached there before it is attached to node ${nodeId}`,
      );
    }
    await driver.attachments.attach(
      volumeId,
      { nodeId, readonly, capability: cap, attachedAt: new Date().toISOString() },
      driver.config.maxVolumesPerNode,
    );
    return { publishContext: publishContextFor(nodeId, readonly) };
  },
});
