/**
 * ControllerExpandVolume: give a volume more room.
 *
 * Kubernetes calls it when a PVC's requested size is raised (the volume's
 * StorageClass must allow expansion). What "more room" means depends on
 * the volume's layout: a quota's limit is raised, and that is all; an
 * image file is grown, and the node must then make its loop device and
 * file system follow — node_expansion_required tells the CO to call
 * NodeExpandVolume. A plain directory (capacity: none) just records the
 * new size, which nothing enforces. Each of these works while the volume
 * is in use (the plugin offers ONLINE expansion).
 *
 * A shared volume's size is a label, like capacity: none: the new size
 * is recorded and nothing else changes.
 *
 * A controller running apart from the nodes (--mode controller, the
 * Deployment beside csi-resizer) holds no node-local volume: they are made
 * and recorded by the node plugins. For a hostPath ID it does not hold, it
 * answers from the request — the size asked for, with node expansion
 * required — and NodeExpandVolume grows the volume on its own node
 * (grow-volume.ts). A shared volume it has no record of is answered the
 * same way, when the driver can prove it made it: its size is a label. See
 * docs/deploy.md, "Controller and node: who answers what".
 *
 * Volumes do not shrink. A range whose limit is below the current size is
 * OUT_OF_RANGE; a range the volume already satisfies because it is larger
 * than required_bytes is success, as the spec asks ("already larger than
 * or equal to the target capacity → OK"), and repeats are harmless.
 */
import type { ControllerExpandVolumeRequest, ControllerExpandVolumeResponse } from "../gen/csi";
import { toCapability, unsupportedReason } from "../csi/capabilities";
import { invalidArgument, notFound, outOfRange } from "../csi/errors";
import { checkMap, checkToken, requireMessage } from "../csi/validate";
import { layoutOf } from "../storage/volume-record";
import { defineRpc } from "../server/rpc";
import { getVolume, profileOf, volumeRef } from "../storage/volumes";
import type { Driver } from "../server/driver";
import { checkRange, type Range } from "./capacity";
import { growHostPathVolume } from "./grow-volume";
import { volumeKey } from "./volume-view";

export const controllerExpandVolume = defineRpc<ControllerExpandVolumeRequest, ControllerExpandVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const range = checkRange(requireMessage(req.capacityRange, "capacity_range"));
    if (range.required === 0 && range.limit === 0) throw invalidArgument("capacity_range names no size (required_bytes and limit_bytes are both 0)");
    checkMap(req.secrets, "secrets");
    const cap = req.volumeCapability && toCapability(req.volumeCapability, "volume_capability");

    const record = await getVolume(driver, volumeId);
    if (!record) return answerFromRequest(driver, volumeId, range);
    if (cap) {
      const why = unsupportedReason(cap, profileOf(driver, record));
      if (why) throw invalidArgument(`volume ${volumeId}: ${why}`);
    }
    const layout = layoutOf(record);
    const nodeExpansionRequired = layout !== "dir";
    const current = record.capacityBytes;
    if (range.limit > 0 && range.limit < current) {
      throw outOfRange(`volume ${volumeId} has ${current} bytes and volumes cannot shrink (limit_bytes is ${range.limit})`);
    }
    if (range.required <= current) return { capacityBytes: current, nodeExpansionRequired };
    if (record.shared) {
      await driver.shared.update({ ...record, capacityBytes: range.required });
      return { capacityBytes: range.required, nodeExpansionRequired: false };
    }
    const grown = await growHostPathVolume(driver, record, range);
    return { capacityBytes: grown.capacityBytes, nodeExpansionRequired };
  },
});

/** A volume this process holds no record of: a node-local one when it runs apart from the nodes, or a shared one. */
async function answerFromRequest(driver: Driver, volumeId: string, range: Range): Promise<ControllerExpandVolumeResponse> {
  const ref = volumeRef(volumeId);
  const size = range.required || range.limit;
  if (ref.backend === "hostpath" && driver.config.mode === "controller") return { capacityBytes: size, nodeExpansionRequired: true };
  if (ref.backend === "nfs" && (await driver.shared.provenLocation(volumeId, ref.id))) return { capacityBytes: size, nodeExpansionRequired: false };
  throw notFound(`volume ${volumeId} does not exist`);
}
