/**
 * ControllerModifyVolume: change a volume's mutable parameters.
 *
 * Kubernetes calls it when a PVC's VolumeAttributesClass changes
 * (external-resizer). The parameters are checked first, all of them, so a
 * refused call changes nothing; then each given key is applied to the
 * volume and the new values are merged into its metadata. Keys not named
 * keep their values. Repeating the call is harmless: applying a value the
 * volume already has changes nothing. The disk is changed before the
 * metadata, so the record never claims what was not done; a crash in
 * between is repaired by the CO's retry.
 *
 * The spec calls mutable_parameters REQUIRED, but an empty map asks for no
 * change, so it is answered as one: OK for a volume that exists (csi-sanity
 * run without a parameters file sends exactly that).
 */
import type { ControllerModifyVolumeRequest, ControllerModifyVolumeResponse } from "../gen/csi";
import { notFound } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { checkMutableParameters } from "./mutable-parameters";
import { lookUp, volumeKey } from "./volume-view";

export const controllerModifyVolume = defineRpc<ControllerModifyVolumeRequest, ControllerModifyVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    checkMap(req.secrets, "secrets");
    const params = checkMutableParameters(req.mutableParameters);
    const { backend, record } = await lookUp(driver, volumeId);
    if (!backend) throw notFound(`volume ${volumeId} does not exist`);
    if (Object.keys(params).length === 0) {
      if (!record && !backend.heldElsewhere) throw notFound(`volume ${volumeId} does not exist`);
      return {};
    }
    // The backend makes it so, and records it; a volume this process holds no record of is its to judge.
    await backend.modify(driver, volumeId, record, params);
    return {};
  },
});
