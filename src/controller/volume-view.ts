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
import type { Backend } from "../backends/backend";

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
 * node. Every volume's says its backend; a shared volume's also say where
 * it is (the node also reads its ID, and a static PV may give them as
 * volumeAttributes).
 */
export const CONTEXT = {
  backend: "csi-lab/backend",
  server: "csi-lab/server",
  share: "csi-lab/share",
  subDir: "csi-lab/subDir",
} as const;

export function toCsiVolume(driver: Driver, backend: Backend, rec: VolumeRecord): Volume {
  return {
    volumeId: rec.volumeId,
    capacityBytes: rec.capacityBytes,
    volumeContext: { [CONTEXT.backend]: backend.name, ...backend.context(rec) },
    contentSource: contentSourceOf(rec),
    // [] = reachable from every node.
    accessibleTopology: backend.topology(driver, rec).map((segments) => ({ segments })),
  };
}

/**
 * The backend that holds a volume ID, and this process's record of the
 * volume: both may be missing (an ID of no backend's shape; a volume made
 * elsewhere, or gone).
 */
export async function lookUp(driver: Driver, volumeId: string): Promise<{ backend: Backend | undefined; record: VolumeRecord | undefined }> {
  const backend = driver.backends.forId(volumeId);
  return { backend, record: backend && (await backend.get(volumeId)) };
}

/** Lock key for a volume; every RPC on one volume uses the same one. */
export function volumeKey(volumeId: string | undefined): string[] {
  return volumeId ? [`volume ${volumeId}`] : [];
}
