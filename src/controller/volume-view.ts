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

/**
 * volume_context keys: the CO stores them in the PV and hands them to the
 * node. A shared volume's say where it is (the node also reads its ID, and
 * a static PV may give them as volumeAttributes).
 */
export const CONTEXT = {
  backend: "csi-lab/backend",
  server: "csi-lab/server",
  share: "csi-lab/share",
  subDir: "csi-lab/subDir",
} as const;

export function toCsiVolume(rec: VolumeRecord): Volume {
  const s = rec.shared;
  return {
    volumeId: rec.volumeId,
    capacityBytes: rec.capacityBytes,
    volumeContext: s
      ? { [CONTEXT.backend]: rec.backend, ...(s.server ? { [CONTEXT.server]: s.server } : {}), [CONTEXT.share]: s.share, [CONTEXT.subDir]: s.subDir }
      : { [CONTEXT.backend]: rec.backend },
    contentSource: contentSourceOf(rec),
    // A shared volume is reachable from every node: no topology constraint.
    accessibleTopology: s ? [] : [{ segments: { ...rec.topology } }],
  };
}

/** Lock key for a volume; every RPC on one volume uses the same one. */
export function volumeKey(volumeId: string | undefined): string[] {
  return volumeId ? [`volume ${volumeId}`] : [];
}
