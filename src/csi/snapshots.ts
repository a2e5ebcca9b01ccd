/**
 * Snapshots on the wire, shared by the Controller and GroupController
 * services.
 *
 * The `Snapshot` message is what the CO keeps (Kubernetes puts it in a
 * VolumeSnapshotContent): the ID it will name the snapshot by, the volume it
 * came from, its size — the least a volume restored from it may have — when
 * it was taken, whether it can be restored from yet, and its group if it is
 * a member of one. Every snapshot here is cut and ready when its create call
 * returns: the copy happens inside the call.
 */
import type { Snapshot, VolumeGroupSnapshot } from "../gen/csi";
import type { Timestamp } from "../gen/google/protobuf/timestamp";
import type { GroupSnapshotRecord, SnapshotRecord } from "../storage/snapshot-record";
import { invalidArgument } from "./errors";
import { checkMap } from "./validate";

/** Keys the external-snapshotter adds with --extra-create-metadata (the VolumeSnapshot's name, …). */
const SNAPSHOTTER_PREFIX = "csi.storage.k8s.io/";

/**
 * VolumeSnapshotClass parameters. This driver has none of its own; a key it
 * does not know would be silently ignored otherwise, so it is refused.
 */
export function checkSnapshotParameters(params: Record<string, string> | undefined): Record<string, string> {
  const p = checkMap(params, "parameters");
  const unknown = Object.keys(p).filter((k) => !k.startsWith(SNAPSHOTTER_PREFIX));
  if (unknown.length > 0) {
    throw invalidArgument(`unknown snapshot parameters ${unknown.map((k) => JSON.stringify(k)).join(", ")} (this driver takes none)`);
  }
  return p;
}

export function toTimestamp(iso: string): Timestamp {
  const ms = Date.parse(iso);
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

export function toCsiSnapshot(rec: SnapshotRecord): Snapshot {
  return {
    snapshotId: rec.snapshotId,
    sourceVolumeId: rec.sourceVolumeId,
    sizeBytes: rec.sizeBytes,
    creationTime: toTimestamp(rec.createdAt),
    readyToUse: true,
    groupSnapshotId: rec.groupSnapshotId ?? "",
  };
}

export function toCsiGroupSnapshot(group: GroupSnapshotRecord, members: SnapshotRecord[]): VolumeGroupSnapshot {
  return {
    groupSnapshotId: group.groupSnapshotId,
    snapshots: members.map(toCsiSnapshot),
    creationTime: toTimestamp(group.createdAt),
    readyToUse: true,
  };
}

/** Lock key for a snapshot; every RPC on one snapshot uses the same one. */
export function snapshotKey(snapshotId: string | undefined): string[] {
  return snapshotId ? [`snapshot ${snapshotId}`] : [];
}

export function groupSnapshotKey(groupSnapshotId: string | undefined): string[] {
  return groupSnapshotId ? [`group snapshot ${groupSnapshotId}`] : [];
}
