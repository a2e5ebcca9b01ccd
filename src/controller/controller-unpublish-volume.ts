/**
 * ControllerUnpublishVolume: detach a volume from a node.
 *
 * The reverse of ControllerPublishVolume, called after every NodeUnpublish
 * and NodeUnstage on that node succeeded. Idempotent in the spec's strong
 * sense: a volume or node we do not know, or a volume not attached there,
 * is already detached, so the answer is OK. Without node_id the volume is
 * detached from every node. A volume still mounted on this node is
 * refused with FAILED_PRECONDITION: detaching a disk under a running pod
 * is exactly what the CO's ordering exists to prevent.
 */
import type { ControllerUnpublishVolumeRequest, ControllerUnpublishVolumeResponse } from "../gen/csi";
import { failedPrecondition } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { requireAttachEnabled } from "./attach";
import { volumeKey } from "./volume-view";

export const controllerUnpublishVolume = defineRpc<ControllerUnpublishVolumeRequest, ControllerUnpublishVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver, log }) {
    requireAttachEnabled(driver, "ControllerUnpublishVolume");
    const volumeId = checkToken(req.volumeId, "volume_id");
    const nodeId = req.nodeId ? checkToken(req.nodeId, "node_id") : undefined;
    checkMap(req.secrets, "secrets");
    const backend = driver.backends.forId(volumeId);
    if (!backend) return {};

    const attached = driver.attachments.of(volumeId).filter((a) => nodeId === undefined || a.nodeId === nodeId);
    if (attached.length === 0) {
      log.debug("not attached there: nothing to do");
      return {};
    }
    if (attached.some((a) => a.nodeId === driver.config.nodeId)) {
      const mounts = await backend.mountedHere(driver, volumeId);
      if (mounts.length > 0) {
        throw failedPrecondition(
          `volume ${volumeId} is still mounted on node ${driver.config.nodeId} at ${mounts.join(", ")}; ` +
            `NodeUnpublishVolume and NodeUnstageVolume must come first`,
        );
      }
    }
    await driver.attachments.detach(volumeId, nodeId);
    return {};
  },
});
