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
import type { VolumeSource } from "../backends/backend";
import { copyContent, type Content } from "./copy-content";
import type { SnapshotRecord } from "./snapshot-record";
import { withProvenContent } from "./snapshot-content";
import type { HoldOptions } from "./hold-still";
import type { NewSnapshot, SnapshotStore } from "./snapshot-store";
import type { VolumeRecord } from "./volume-record";

/** Run `fn` on a snapshot's content, proven to be what its record names (storage/snapshot-content.ts); FAILED_PRECONDITION if it is not. */
export function readSnapshot<T>(store: SnapshotStore, rec: SnapshotRecord, fn: (content: Content) => Promise<T>): Promise<T> {
  return withProvenContent(store.contentPath(rec.snapshotId), rec, fn);
}

export interface SnapshotSpec {
  snapshotId: string;
  name: string;
  parameters: Record<string, string>;
  groupSnapshotId?: string;
  /** When the content was taken, if not when the store starts to make it: a group's members all date from the group's one instant. */
  createdAt?: string;
}

/** What a call lends the copy of a volume in use: its deadline (the longest a freeze may last) and its log. */
export type CallHold = Pick<HoldOptions, "signal" | "log">;

/** The snapshot's record, for a copy of `volume`. */
export function snapshotRecordOf(volume: VolumeRecord, spec: SnapshotSpec, layout: Content["layout"]): NewSnapshot {
  return { ...spec, sourceVolumeId: volume.volumeId, sizeBytes: volume.capacityBytes, layout, ...(volume.fsType ? { fsType: volume.fsType } : {}) };
}

/**
 * Copy a volume into the snapshot store as `spec.snapshotId` (or return the
 * snapshot that exists). Its backend says where the content is and checks
 * it first (VolumeSource); a volume in use is held still for the copy
 * (storage/hold-still.ts), within the call's deadline.
 */
export async function snapshotVolume(
  snapshots: SnapshotStore,
  volume: VolumeRecord,
  source: VolumeSource,
  spec: SnapshotSpec,
  call: CallHold,
): Promise<{ record: SnapshotRecord; created: boolean }> {
  return snapshots.create(snapshotRecordOf(volume, spec, source.layout), (staging) =>
    source.read((content) => copyContent(content, staging, { viewsDir: snapshots.viewsDir, hold: { markersDir: snapshots.markersDir, ...call } })),
  );
}
