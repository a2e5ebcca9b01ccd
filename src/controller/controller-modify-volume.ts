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
import { failedPrecondition, invalidArgument, notFound } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { layoutOf } from "../storage/volume-record";
import { applyMutableParametersAnywhere, checkMutableParameters, unfitProblem } from "./mutable-parameters";
import { conditionOf, getVolume, volumeRef } from "../storage/volumes";
import type { Driver } from "../server/driver";
import { volumeKey } from "./volume-view";

export const controllerModifyVolume = defineRpc<ControllerModifyVolumeRequest, ControllerModifyVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    checkMap(req.secrets, "secrets");
    const params = checkMutableParameters(req.mutableParameters);

    const record = await getVolume(driver, volumeId);
    if (!record) return modifyUnheld(driver, volumeId, params);
    if (Object.keys(params).length === 0) return {};
    const unfit = unfitProblem(layoutOf(record), params);
    if (unfit) throw invalidArgument(`volume ${volumeId}: ${unfit}`);
    const condition = await conditionOf(driver, record);
    if (condition.abnormal) throw failedPrecondition(`volume ${volumeId} cannot be modified: ${condition.message}`);

    await applyMutableParametersAnywhere(driver, record, params);
    const merged = { ...record.mutableParameters, ...params };
    if (Object.entries(params).some(([k, v]) => record.mutableParameters[k] !== v)) {
      const updated = { ...record, mutableParameters: merged };
      await (record.shared ? driver.shared.update(updated) : driver.hostpath.update(updated));
    }
    return {};
  },
});

/**
 * A volume this process holds no record of. A shared one it can prove it
 * made is changed on its share. A node-local one, seen by a controller
 * that runs apart from the nodes, cannot be: its directory is on another
 * machine, and CSI has no node call that carries new mutable parameters.
 * That is answered INVALID_ARGUMENT (the resizer then marks the change
 * infeasible instead of retrying for ever), saying why.
 */
async function modifyUnheld(driver: Driver, volumeId: string, params: Record<string, string>): Promise<ControllerModifyVolumeResponse> {
  const ref = volumeRef(volumeId);
  if (ref.backend === "hostpath" && driver.config.mode === "controller") {
    throw invalidArgument(
      `volume ${volumeId} lives on a node's own disk, and this controller (--mode controller) holds no node-local volume: ` +
        "its mutable parameters can only be set when it is created (docs/deploy.md)",
    );
  }
  const loc = ref.backend === "nfs" ? await driver.shared.provenLocation(volumeId, ref.id) : undefined;
  if (!loc) throw notFound(`volume ${volumeId} does not exist`);
  const unfit = unfitProblem("dir", params);
  if (unfit) throw invalidArgument(`volume ${volumeId}: ${unfit}`);
  if (params.mode !== undefined) await driver.shared.setMode(loc, parseInt(params.mode, 8));
  return {};
}
