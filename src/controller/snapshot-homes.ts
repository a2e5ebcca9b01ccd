/**
 * Where a snapshot is kept: in this controller's snapshot store (beside
 * the volumes of this node), or by the backend of its volume, where every
 * node can reach it — a shared volume's, on its share
 * (backends/nfs/share-snapshots.ts). The snapshot calls ask here which:
 * for a snapshot by the shape of its ID, for a new one by its source
 * volume's backend.
 */
import type { BackendSnapshots } from "../backends/backend";
import type { Driver } from "../server/driver";
import type { SnapshotRecord } from "../storage/snapshot-record";

/** The backends that keep snapshots themselves. */
export function snapshotHomes(driver: Driver): BackendSnapshots[] {
  return driver.backends.all.flatMap((b) => (b.snapshots ? [b.snapshots] : []));
}

/** Which backend keeps the snapshot of this ID; undefined: the snapshot store does. */
export function homeOf(driver: Driver, snapshotId: string): BackendSnapshots | undefined {
  return snapshotHomes(driver).find((h) => h.ownsId(snapshotId));
}

/** Where CreateSnapshot of `name` from `sourceVolumeId` puts it, with its ID; undefined: in the snapshot store. */
export function homeFor(driver: Driver, name: string, sourceVolumeId: string | undefined): { home: BackendSnapshots; snapshotId: string } | undefined {
  const home = sourceVolumeId ? driver.backends.forId(sourceVolumeId)?.snapshots : undefined;
  const snapshotId = home?.idFor(name, sourceVolumeId!);
  return home && snapshotId ? { home, snapshotId } : undefined;
}

/** The snapshot of this ID, wherever it is kept, if it exists. */
export async function findSnapshot(driver: Driver, snapshotId: string): Promise<SnapshotRecord | undefined> {
  const home = homeOf(driver, snapshotId);
  return home ? home.get(snapshotId) : driver.snapshots.get(snapshotId);
}
