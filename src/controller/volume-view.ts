/**
 * How a stored volume is described on the wire.
 *
 * The `Volume` message is what the CO keeps (Kubernetes puts it in the PV):
 * the ID it will name the volume by, its size, the context handed back to
 * the node calls, and where it can be reached from.
 */
import type { Topology, Volume, VolumeContentSource } from "../gen/csi";
import type { Driver } from "../server/driver";
import type { VolumeRecord } from "../storage/volume-record";

export function nodeTopology(driver: Driver): Topology {
  return { segments: { [driver.topologyKey]: driver.config.nodeId } };
}

export function contentSourceOf(rec: VolumeRecord): VolumeContentSource | undefined {
  const src = rec.contentSource;
  if (src?.snapshotId) return { snapshot: { snapshotId: src.snapshotId } };
  if (src?.volumeId) return { volume: { volumeId: src.volumeId } };
  return undefined;
}

export function toCsiVolume(rec: VolumeRecord): Volume {
  return {
    volumeId: rec.volumeId,
    capacityBytes: rec.capacityBytes,
    volumeContext: { "csi-lab/backend": rec.backend },
    contentSource: contentSourceOf(rec),
    accessibleTopology: [{ segments: { ...rec.topology } }],
  };
}

/** Lock key for a volume; every RPC on one volume uses the same one. */
export function volumeKey(volumeId: string | undefined): string[] {
  return volumeId ? [`volume ${volumeId}`] : [];
}
