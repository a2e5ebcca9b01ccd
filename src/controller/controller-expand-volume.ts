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
import { getVolume, profileOf } from "../storage/volumes";
import { checkRange } from "./capacity";
import { holdSpace, sizeFor } from "./placement";
import { volumeKey } from "./volume-view";

export const controllerExpandVolume = defineRpc<ControllerExpandVolumeRequest, ControllerExpandVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const range = checkRange(requireMessage(req.capacityRange, "capacity_range"));
    if (range.required === 0 && range.limit === 0) throw invalidArgument("capacity_range names no size (required_bytes and limit_bytes are both 0)");
    checkMap(req.secrets, "secrets");
    const cap = req.volumeCapability && toCapability(req.volumeCapability, "volume_capability");

    const store = driver.hostpath;
    const record = await getVolume(driver, volumeId);
    if (!record) throw notFound(`volume ${volumeId} does not exist`);
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

    const placement = { layout, withQuota: record.quota !== undefined, fsType: undefined };
    const size = sizeFor(placement, range.required, range);
    const fsTotal = (await store.usage()).totalBytes;
    if (size > fsTotal) throw outOfRange(`a volume of ${size} bytes cannot fit on this node's file system (${fsTotal} bytes in all)`);
    const enforced = layout !== "dir" || record.quota !== undefined;
    const release = enforced ? await holdSpace(driver, size - current, `growing volume ${volumeId} to ${size} bytes`) : () => {};
    try {
      const grown = await store.expand(record, size);
      return { capacityBytes: grown.capacityBytes, nodeExpansionRequired };
    } finally {
      release();
    }
  },
});
