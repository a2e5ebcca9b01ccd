/**
 * How ephemeral inline volumes are named in the store.
 *
 * An inline volume (a pod's `csi:` volume, the CSI form of an emptyDir) is
 * created by NodePublishVolume, not CreateVolume, under the volume_id the
 * kubelet chose. It is stored like any volume, under the name
 * "ephemeral/<volume_id>": the store's ID is derived from that name, so
 * NodeUnpublishVolume, which is told only the kubelet's volume_id, finds
 * it with one read. A "/" can never appear in a CreateVolume name
 * (validate.ts), so no provisioned volume can collide with one.
 */
import type { VolumeRecord } from "../../storage/volume-record";

const PREFIX = "ephemeral/";

export function ephemeralName(volumeId: string): string {
  return PREFIX + volumeId;
}

export function isEphemeralRecord(record: VolumeRecord): boolean {
  return record.name.startsWith(PREFIX);
}
