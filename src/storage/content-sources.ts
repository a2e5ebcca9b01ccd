/**
 * Volumes and snapshots as sources of content, and taking a snapshot.
 *
 * These are the three moves of the snapshot feature, all one copy:
 *   snapshot  volume content   → snapshot store   (CreateSnapshot, groups)
 *   restore   snapshot content → new volume       (CreateVolume from a snapshot)
 *   clone     volume content   → new volume       (CreateVolume from a volume)
 * A volume's content is live (pods may be writing it) and is read through a
 * safe view; a snapshot's is not reachable by pods and is read directly.
 */
import { failedPrecondition } from "../csi/errors";
import { copyContent, layoutOf, type Content } from "./copy-content";
import type { HostPathStore } from "./hostpath-store";
import type { SharedStore } from "./shared/shared-store";
import type { SnapshotRecord } from "./snapshot-record";
import type { HoldOptions } from "./hold-still";
import type { NewSnapshot, SnapshotStore } from "./snapshot-store";
import type { VolumeRecord } from "./volume-record";

/**
 * Where a volume's content is. For the "dir" layout it is the volume's data
 * directory; the "image" and "block" layouts keep one file at that same
 * path (data/<id>), so this is the only function to change if they move it.
 */
export function volumeContent(store: HostPathStore, rec: VolumeRecord): Content {
  return { path: store.dataDir(rec.volumeId), layout: layoutOf(rec), live: true };
}

export function snapshotContent(store: SnapshotStore, rec: SnapshotRecord): Content {
  return { path: store.contentPath(rec.snapshotId), layout: rec.layout, live: false };
}

export interface SnapshotSpec {
  snapshotId: string;
  name: string;
  parameters: Record<string, string>;
  groupSnapshotId?: string;
}

/** What a call lends the copy of a volume in use: its deadline (the longest a freeze may last) and its log. */
export type CallHold = Pick<HoldOptions, "signal" | "log">;

/** The snapshot's record, for a copy of `volume`. */
export function snapshotRecordOf(volume: VolumeRecord, spec: SnapshotSpec, layout: Content["layout"]): NewSnapshot {
  return { ...spec, sourceVolumeId: volume.volumeId, sizeBytes: volume.capacityBytes, layout, ...(volume.fsType ? { fsType: volume.fsType } : {}) };
}

/** Refuse to copy a volume whose content is not what its layout says. */
export async function requireCopyable(hostpath: HostPathStore, volume: VolumeRecord): Promise<void> {
  const condition = await hostpath.condition(volume.volumeId);
  if (condition.abnormal) throw failedPrecondition(`volume ${volume.volumeId} cannot be snapshotted: ${condition.message}`);
}

/**
 * Copy `volume` into the snapshot store as `spec.snapshotId` (or return
 * the snapshot that exists). A volume in use is held still for the copy
 * (storage/hold-still.ts), within the call's deadline.
 */
export async function snapshotVolume(
  hostpath: HostPathStore,
  snapshots: SnapshotStore,
  volume: VolumeRecord,
  spec: SnapshotSpec,
  call: CallHold,
): Promise<{ record: SnapshotRecord; created: boolean }> {
  const from = volumeContent(hostpath, volume);
  return snapshots.create(snapshotRecordOf(volume, spec, from.layout), async (staging) => {
    await requireCopyable(hostpath, volume);
    await copyContent(from, staging, { viewsDir: snapshots.viewsDir, hold: { markersDir: snapshots.markersDir, ...call } });
  });
}

/**
 * The same for a shared volume: its directory on the share (mounted for
 * the copy if the share is remote) is copied into the snapshot store, a
 * directory tree like any "dir" volume's. The share is probed first, so a
 * share that does not answer fails the call instead of hanging the copy.
 */
export async function snapshotSharedVolume(
  shared: SharedStore,
  snapshots: SnapshotStore,
  volume: VolumeRecord,
  spec: SnapshotSpec,
): Promise<{ record: SnapshotRecord; created: boolean }> {
  const loc = volume.shared!;
  return snapshots.create({ ...spec, sourceVolumeId: volume.volumeId, sizeBytes: volume.capacityBytes, layout: "dir" }, async (staging) => {
    const condition = await shared.condition(loc);
    if (condition.abnormal) throw failedPrecondition(`volume ${volume.volumeId} cannot be snapshotted: ${condition.message}`);
    await shared.withVolumeDir(loc, (dir) => copyContent({ path: dir, layout: "dir", live: true }, staging, { viewsDir: snapshots.viewsDir }));
  });
}
