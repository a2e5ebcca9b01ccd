/**
 * ControllerGetVolume: one volume's description and health.
 *
 * The volume condition is what Kubernetes' health monitor surfaces as an
 * event on the PVC: here, whether the volume's directory is still there and
 * still a directory (for a shared volume, a bounded probe on the share).
 */
import type { ControllerGetVolumeRequest, ControllerGetVolumeResponse } from "../gen/csi";
import { notFound } from "../csi/errors";
import { checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { publishedNodeIds } from "./attach";
import { lookUp, toCsiVolume } from "./volume-view";

export const controllerGetVolume = defineRpc<ControllerGetVolumeRequest, ControllerGetVolumeResponse>({
  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const { backend, record } = await lookUp(driver, volumeId);
    if (!record) throw notFound(`volume ${volumeId} does not exist`);
    const volumeCondition = await backend!.condition(record);
    return { volume: toCsiVolume(driver, backend!, record), status: { publishedNodeIds: publishedNodeIds(driver, volumeId), volumeCondition } };
  },
});
