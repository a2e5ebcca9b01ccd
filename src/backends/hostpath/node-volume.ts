/**
 * Checks the node RPCs share: the volume exists, the capability is one it
 * can deliver, and what the kernel shows at a staging or target path.
 */
import { hostPathStore } from "./store";
import { toCapability, unsupportedReason, type Capability } from "../../csi/capabilities";
import { failedPrecondition, invalidArgument, notFound } from "../../csi/errors";
import type { VolumeCapability } from "../../gen/csi";
import { parseBindFlags, type BindFlags } from "../../mount/options";
import { mountTable } from "../../mount/mountinfo";
import { mountsOfImage, type VolumeMounts } from "../../mount/volume-mounts";
import type { Driver } from "../../server/driver";
import { layoutOf, type VolumeLayout, type VolumeRecord } from "../../storage/volume-record";
import type { DirIdentityParts } from "../../storage/dir-identity";
import type { FileIdentity } from "../../mount/loop";
import { imageOfRecord, mountsOfDirOfRecord } from "./volume-dir";

export interface NodeVolume {
  record: VolumeRecord;
  layout: VolumeLayout;
  /** data/<id>: the volume's directory, or its image file. */
  dataDir: string;
  /** Which directory or image file the driver made for it (volume-dir.ts); absent in older records. */
  dataIdentity?: DirIdentityParts;
  /** A dir volume that is a file system of its own (a btrfs subvolume, for its quota): its device is not the root's. */
  ownDevice?: boolean;
  /**
   * Image and block volumes: the file their loop devices are attached to — the image the record names,
   * wherever it is now (volume-dir.ts: imageOfRecord) — found the first time this is asked for.
   */
  readonly image: FileIdentity | undefined;
  /** Where the kernel shows the volume mounted: the mount table, read the first time this is asked for. */
  readonly mounts: VolumeMounts;
}

export async function findVolume(driver: Driver, volumeId: string): Promise<NodeVolume> {
  const record = await hostPathStore(driver).get(volumeId);
  if (!record) throw notFound(`volume ${volumeId} does not exist on this node`);
  const dataDir = hostPathStore(driver).dataDir(volumeId);
  const condition = await hostPathStore(driver).condition(volumeId, record);
  if (condition.abnormal && !condition.usable) throw failedPrecondition(`volume ${volumeId} cannot be used: ${condition.message}`);
  return nodeVolume(record, dataDir);
}

/** A volume as node calls see it; its mounts are read from the table only if asked for. */
export function nodeVolume(record: VolumeRecord, dataDir: string): NodeVolume {
  const onDisk = volumeOnDisk(layoutOf(record), dataDir, record.dataIdentity);
  return {
    record,
    layout: onDisk.layout,
    dataDir,
    ...(record.dataIdentity ? { dataIdentity: record.dataIdentity, ownDevice: record.quota?.kind === "btrfs-qgroup" } : {}),
    get image() {
      return onDisk.image;
    },
    get mounts() {
      return onDisk.mounts;
    },
  };
}

/** What is on disk and in the kernel of a volume, without its record. */
export type VolumeOnDisk = Pick<NodeVolume, "layout" | "dataDir" | "mounts" | "image" | "dataIdentity" | "ownDevice">;

/**
 * A volume of `layout` whose data is at `dataDir`, the one `dataIdentity` names (absent: an old or
 * unreadable record, whatever is at the name); its image and mounts are looked up only if asked for.
 */
export function volumeOnDisk(layout: VolumeLayout, dataDir: string, dataIdentity?: DirIdentityParts): VolumeOnDisk {
  let mounts: VolumeMounts | undefined;
  let image: { id: FileIdentity | undefined } | undefined;
  return {
    layout,
    dataDir,
    get image() {
      if (layout === "dir") return undefined;
      return (image ??= { id: imageOfRecord(dataDir, dataIdentity) }).id;
    },
    get mounts() {
      // A directory's binds, or its image's loops' mounts: of the data the record names, wherever it is (volume-dir.ts).
      return (mounts ??= layout === "dir" ? mountsOfDirOfRecord(dataDir, dataIdentity) : mountsOfImage(this.image, mountTable()));
    },
  };
}

/**
 * A node call's capability: malformed → INVALID_ARGUMENT; well-formed but
 * beyond what any volume can do → FAILED_PRECONDITION (the spec's
 * "exceeds capabilities" for node calls). `requireDeliverable` then checks
 * it against the volume's own layout.
 */
export function nodeCapability(driver: Driver, volumeId: string, cap: VolumeCapability | undefined): { cap: Capability; flags: BindFlags } {
  const c = toCapability(cap, "volume_capability");
  const flags = parseBindFlags(c.mountFlags);
  if (typeof flags === "string") throw invalidArgument(flags);
  const why = unsupportedReason(c, hostPathStore(driver).anyLayoutProfile);
  if (why) throw failedPrecondition(`volume ${volumeId}: ${why}`);
  return { cap: c, flags };
}

/** FAILED_PRECONDITION unless this volume can be used with `cap` (e.g. block access to a file system volume). */
export function requireDeliverable(driver: Driver, vol: NodeVolume, cap: Capability): void {
  const why = unsupportedReason(cap, hostPathStore(driver).profileOf(vol.record));
  if (why) throw failedPrecondition(`volume ${vol.record.volumeId}: ${why}`);
}
