/**
 * What a snapshot and a group snapshot carry on disk.
 *
 * A snapshot is a frozen copy of one volume's content plus a small JSON
 * record: the name the CO created it under, the volume it came from, the
 * size a volume restored from it must at least have, and — for members of a
 * group snapshot — the group. Records never change after they are written;
 * a group's record lists its members. Versioned like volume records: new
 * fields are optional, old records stay readable.
 */
import type { ContentLayout } from "./copy-content";
import type { DirIdentityParts } from "./dir-identity";
import { isIdentityParts } from "./volume-record";

export const SNAPSHOT_RECORD_VERSION = 1;

export interface SnapshotRecord {
  version: number;
  snapshotId: string;
  name: string;
  sourceVolumeId: string;
  /** The source volume's capacity: the least a volume restored from this snapshot may have. */
  sizeBytes: number;
  layout: ContentLayout;
  /** For an "image" snapshot: the file system inside it (restores keep it). */
  fsType?: string;
  parameters: Record<string, string>;
  /** Set for members of a group snapshot: they are deleted with the group, never alone. */
  groupSnapshotId?: string;
  /** When the copy was started: the snapshot's point in time. */
  createdAt: string;
  /**
   * Which directory or file the content at snapshots/data/<id> is (storage/snapshot-content.ts),
   * taken when it was made. Records from before it have none: their content is taken by its name.
   */
  contentIdentity?: DirIdentityParts;
}

export interface GroupSnapshotRecord {
  version: number;
  groupSnapshotId: string;
  name: string;
  sourceVolumeIds: string[];
  /** Member snapshot IDs, in the order of sourceVolumeIds. */
  snapshotIds: string[];
  parameters: Record<string, string>;
  createdAt: string;
}

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string");
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

function common(raw: unknown, idField: string, expectedId: string): Record<string, unknown> | string {
  if (typeof raw !== "object" || raw === null) return "metadata is not a JSON object";
  const r = raw as Record<string, unknown>;
  if (typeof r.version !== "number" || r.version > SNAPSHOT_RECORD_VERSION) {
    return `metadata version ${String(r.version)} is not understood by this driver (it reads up to ${SNAPSHOT_RECORD_VERSION})`;
  }
  if (r[idField] !== expectedId) return `metadata names ${String(r[idField])}, not ${expectedId}`;
  if (typeof r.name !== "string" || typeof r.createdAt !== "string" || Number.isNaN(Date.parse(r.createdAt))) {
    return "metadata lacks name or createdAt";
  }
  if (!isStringMap(r.parameters)) return "metadata has malformed parameters";
  return r;
}

/** Check a parsed snapshot record; returns the reason it is unusable, or the record. */
export function parseSnapshotRecord(raw: unknown, expectedId: string): SnapshotRecord | string {
  const r = common(raw, "snapshotId", expectedId);
  if (typeof r === "string") return r;
  if (typeof r.sourceVolumeId !== "string") return "metadata has no sourceVolumeId";
  if (typeof r.sizeBytes !== "number" || !Number.isSafeInteger(r.sizeBytes) || r.sizeBytes < 0) return "metadata has no valid sizeBytes";
  if (r.layout !== "dir" && r.layout !== "image" && r.layout !== "block") return `metadata has unknown layout ${String(r.layout)}`;
  if (r.groupSnapshotId !== undefined && typeof r.groupSnapshotId !== "string") return "metadata has a malformed groupSnapshotId";
  if (r.contentIdentity !== undefined && !isIdentityParts(r.contentIdentity)) return "metadata has a malformed contentIdentity";
  return r as unknown as SnapshotRecord;
}

/** Check a parsed group snapshot record. */
export function parseGroupRecord(raw: unknown, expectedId: string): GroupSnapshotRecord | string {
  const r = common(raw, "groupSnapshotId", expectedId);
  if (typeof r === "string") return r;
  if (!isStringArray(r.sourceVolumeIds) || !isStringArray(r.snapshotIds) || r.sourceVolumeIds.length !== r.snapshotIds.length) {
    return "metadata has malformed sourceVolumeIds or snapshotIds";
  }
  return r as unknown as GroupSnapshotRecord;
}
