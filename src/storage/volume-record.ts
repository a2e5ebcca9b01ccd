/**
 * The metadata a volume carries on disk.
 *
 * Everything the controller must remember about a volume — the name it was
 * created under, its size, the capabilities and parameters it was made for,
 * where its content came from — lives in one small JSON file next to the
 * volume's data, written atomically. There is no other database: list the
 * directory and you have the driver's whole state.
 */
import type { Capability } from "../csi/capabilities";
import { isQuotaInfo, type QuotaInfo } from "../backends/hostpath/quota/quota-backend";
import type { DirIdentityParts } from "./dir-identity";

export const RECORD_VERSION = 1;

/**
 * How a volume's data is kept under data/<id> (see docs/capacity.md):
 * "dir"   a directory, bind-mounted (optionally limited by a quota);
 * "image" a sparse file holding its own file system, loop-mounted;
 * "block" a sparse file handed to the pod as a raw block device.
 */
export type VolumeLayout = "dir" | "image" | "block";
export const VOLUME_LAYOUTS: readonly VolumeLayout[] = ["dir", "image", "block"];

export interface ContentSource {
  snapshotId?: string;
  volumeId?: string;
}

export interface VolumeRecord {
  version: number;
  volumeId: string;
  name: string;
  backend: string;
  capacityBytes: number;
  /** The capabilities CreateVolume asked for. */
  capabilities: Capability[];
  parameters: Record<string, string>;
  /** The mutable parameters the volume has: CreateVolume's, as ControllerModifyVolume changed them since. */
  mutableParameters: Record<string, string>;
  /**
   * The mutable_parameters CreateVolume asked for, kept once ControllerModifyVolume changed
   * them (absent until then, and in records older than the field): a retry of that
   * CreateVolume is compared with these, not with what the volume has now.
   */
  createdMutableParameters?: Record<string, string>;
  contentSource?: ContentSource;
  /** Topology segments where the volume can be reached. */
  topology: Record<string, string>;
  createdAt: string;
  /** Absent in records made before layouts existed: those are all "dir". */
  layout?: VolumeLayout;
  /** "image" layout: the file system inside the image (ext4, xfs). */
  fsType?: string;
  /** "dir" layout with an enforced size: the quota that enforces it. */
  quota?: QuotaInfo;
  /**
   * hostPath: which directory (layout "dir") or image file ("image", "block") the driver made for
   * the volume (storage/dir-identity.ts), so that another put at its name is never taken for it
   * (backends/hostpath/volume-dir.ts). Absent in records written before the field (before
   * image volumes had one, for those): their data is taken by its name.
   */
  dataIdentity?: DirIdentityParts;
  /** Backend "nfs": where the volume's directory is (its ID says the same; see src/backends/nfs/volume-id.ts). */
  shared?: SharedRecordPart;
}

export interface SharedRecordPart {
  server: string;
  share: string;
  subDir: string;
  onDelete: "delete" | "retain" | "archive";
}

function isSharedPart(v: unknown): v is SharedRecordPart {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.server === "string" && typeof r.share === "string" && typeof r.subDir === "string" && ["delete", "retain", "archive"].includes(r.onDelete as string);
}

/** The mutable parameters CreateVolume asked for (without the field, the record's are still those). */
export function createdMutableParameters(rec: Pick<VolumeRecord, "mutableParameters" | "createdMutableParameters">): Record<string, string> {
  return rec.createdMutableParameters ?? rec.mutableParameters;
}

/**
 * The record with `params` merged into its mutable parameters, keeping those
 * CreateVolume asked for; undefined when it has them all already (nothing to write).
 */
export function withMutableParameters(rec: VolumeRecord, params: Record<string, string>): VolumeRecord | undefined {
  if (Object.entries(params).every(([k, v]) => rec.mutableParameters[k] === v)) return undefined;
  return { ...rec, mutableParameters: { ...rec.mutableParameters, ...params }, createdMutableParameters: createdMutableParameters(rec) };
}

/** A record's layout; old records without the field are directories. */
export function layoutOf(rec: Pick<VolumeRecord, "layout">): VolumeLayout {
  return rec.layout ?? "dir";
}

/** Is `v` identity parts as a record keeps them (storage/dir-identity.ts)? */
export function isIdentityParts(v: unknown): v is DirIdentityParts {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Record<string, unknown>;
  const digits = (x: unknown) => typeof x === "string" && /^\d+$/.test(x);
  return digits(r.ino) && (r.born === undefined || digits(r.born)) && (r.generation === undefined || Number.isSafeInteger(r.generation));
}

function isStringMap(v: unknown): v is Record<string, string> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === "string");
}

/** Check a parsed meta.json; returns the reason it is unusable, or the record. */
export function parseRecord(raw: unknown, expectedId: string): VolumeRecord | string {
  if (typeof raw !== "object" || raw === null) return "metadata is not a JSON object";
  const r = raw as Record<string, unknown>;
  if (typeof r.version !== "number" || r.version > RECORD_VERSION) {
    return `metadata version ${String(r.version)} is not understood by this driver (it reads up to ${RECORD_VERSION})`;
  }
  if (r.volumeId !== expectedId) return `metadata names volume ${String(r.volumeId)}, not ${expectedId}`;
  if (typeof r.name !== "string" || typeof r.backend !== "string") return "metadata lacks name or backend";
  if (typeof r.capacityBytes !== "number" || !Number.isSafeInteger(r.capacityBytes)) return "metadata has no valid capacityBytes";
  if (!Array.isArray(r.capabilities)) return "metadata has no capabilities";
  if (!isStringMap(r.parameters) || !isStringMap(r.mutableParameters) || !isStringMap(r.topology)) {
    return "metadata has malformed parameters or topology";
  }
  if (r.createdMutableParameters !== undefined && !isStringMap(r.createdMutableParameters)) {
    return "metadata has malformed createdMutableParameters";
  }
  if (typeof r.createdAt !== "string") return "metadata has no createdAt";
  if (r.layout !== undefined && !VOLUME_LAYOUTS.includes(r.layout as VolumeLayout)) return `metadata has unknown layout ${String(r.layout)}`;
  if (r.fsType !== undefined && typeof r.fsType !== "string") return "metadata has a malformed fsType";
  if (r.quota !== undefined && !isQuotaInfo(r.quota)) return "metadata has a malformed quota";
  if (r.dataIdentity !== undefined && !isIdentityParts(r.dataIdentity)) return "metadata has a malformed dataIdentity";
  if (r.shared !== undefined && !isSharedPart(r.shared)) return "metadata has a malformed shared location";
  return r as unknown as VolumeRecord;
}

/** Is a volume healthy? (ControllerGetVolume, ListVolumes, NodeGetVolumeStats report it as VolumeCondition.) */
export interface Condition {
  abnormal: boolean;
  message: string;
  /** Abnormal, but the data is there and may still be mounted (its limit is no longer enforced). */
  usable?: boolean;
}
