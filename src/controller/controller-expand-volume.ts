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
 * and recorded by the node plugins. For one it does not hold, it answers
 * from the request — the size the node will give it (whole MiB for a
 * hostPath volume, whole pages for a memory one), with node expansion
 * required — and NodeExpandVolume grows the volume on its own node. See
 * docs/deploy.md, "Controller and node: who answers what". (Which layouts
 * need the node, and how a volume grows, is its backend's: src/backends.)
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
import { defineRpc } from "../server/rpc";
import { checkRange } from "./capacity";
import { lookUp, volumeKey } from "./volume-view";

export const controllerExpandVolume = defineRpc<ControllerExpandVolumeRequest, ControllerExpandVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const range = checkRange(requireMessage(req.capacityRange, "capacity_range"));
    if (range.required === 0 && range.limit === 0) throw invalidArgument("capacity_range names no size (required_bytes and limit_bytes are both 0)");
    checkMap(req.secrets, "secrets");
    const cap = req.volumeCapability && toCapability(req.volumeCapability, "volume_capability");

    const { backend, record } = await lookUp(driver, volumeId);
    if (!backend) throw notFound(`volume ${volumeId} does not exist`);
    if (record) {
      if (cap) {
        const why = unsupportedReason(cap, backend.profile(record));
        if (why) throw invalidArgument(`volume ${volumeId}: ${why}`);
      }
      if (range.limit > 0 && range.limit < record.capacityBytes) {
        throw outOfRange(`volume ${volumeId} has ${record.capacityBytes} bytes and volumes cannot shrink (limit_bytes is ${range.limit})`);
      }
    }
    // How it grows, and whether the node must follow, is the backend's; one this process holds no record of is its to judge.
    return backend.expand(driver, volumeId, record, range);
  },
});
