/**
 * How a new volume is kept, and whether the node can promise its size.
 *
 * The StorageClass parameter `capacity` says how a volume's size is
 * enforced (docs/capacity.md):
 *
 *   quota  a directory limited by the root's quotas (XFS/ext4 project
 *          quotas, btrfs qgroups) — only where the root has them
 *   image  a sparse image file with its own ext4 or XFS file system,
 *          loop-mounted: works on any root
 *   none   a plain directory; the size is a label, nothing enforces it
 *
 * Without the parameter the driver's --default-capacity-mode applies;
 * "auto" is quota where the root has quotas and image elsewhere, so a
 * volume's size is a limit unless someone asks otherwise. A block volume
 * (access type block) is always an image file without a file system.
 *
 * A size that is enforced is a promise: the node must be able to keep it
 * while every other promise is kept too, so new and grown volumes are
 * checked against what can still be promised (capacity-ledger.ts).
 */
import type { Capability } from "../../csi/capabilities";
import { invalidArgument, outOfRange, resourceExhausted } from "../../csi/errors";
import { DEFAULT_IMAGE_FS, isImageFsType, MIN_IMAGE_BYTES, type FsType } from "../../mount/filesystem";
import type { Driver } from "../../server/driver";
import type { VolumeLayout } from "../../storage/volume-record";
import { fits, type Range } from "../../controller/capacity";
import { describeSource } from "../../controller/content-source";
import type { SourcePlan } from "../backend";
import { hostPathStore } from "./store";

export type CapacityMode = "quota" | "image" | "none";
export const CAPACITY_MODES: readonly CapacityMode[] = ["quota", "image", "none"];

export interface Placement {
  layout: VolumeLayout;
  /** "dir" layout limited by a quota. */
  withQuota: boolean;
  /** "image" layout: the file system to make. */
  fsType?: FsType;
}

const MiB = 1024 * 1024;

/** The mode a volume gets when its parameters name none. */
export function defaultMode(driver: Driver): CapacityMode {
  const d = driver.config.defaultCapacityMode;
  return d === "auto" ? (hostPathStore(driver).quota ? "quota" : "image") : d;
}

/**
 * Choose the layout for a new volume from its parameters and
 * capabilities. INVALID_ARGUMENT for combinations that mean nothing;
 * RESOURCE_EXHAUSTED for quotas on a node without them (another node may
 * have them, so the CO may try elsewhere).
 */
export function place(parameters: Record<string, string>, caps: readonly Capability[], driver: Driver): Placement {
  const asked = parameters.capacity as CapacityMode | undefined;
  const block = caps.some((c) => c.accessType === "block");
  if (block) {
    if (caps.some((c) => c.accessType === "mount")) {
      throw invalidArgument("volume_capabilities ask for both block and mount access; a volume is either a block device or a file system");
    }
    if (asked && asked !== "image") {
      throw invalidArgument(`block volumes are always image files; capacity: ${asked} does not apply to them (omit it or say image)`);
    }
    return { layout: "block", withQuota: false };
  }
  const mode = asked ?? defaultMode(driver);
  if (mode === "quota") {
    if (!hostPathStore(driver).quota) throw resourceExhausted(`capacity: quota is not available on this node: ${hostPathStore(driver).noQuotaReason}`);
    return { layout: "dir", withQuota: true };
  }
  if (mode === "none") return { layout: "dir", withQuota: false };
  const fsTypes = [...new Set(caps.map((c) => c.fsType).filter((t) => t !== ""))];
  if (fsTypes.length > 1) throw invalidArgument(`volume_capabilities name different fs_types (${fsTypes.join(", ")}); an image holds one file system`);
  const fsType = fsTypes[0] ?? DEFAULT_IMAGE_FS;
  if (!isImageFsType(fsType)) throw invalidArgument(`fs_type ${JSON.stringify(fsType)} is not available for image volumes (ext4, xfs)`);
  return { layout: "image", withQuota: false, fsType };
}

/**
 * The size to give: image files grow in whole MiB and have a floor set by
 * their file system (mkfs.xfs needs 300 MiB). `wanted` is rounded up to
 * that; where that passes limit_bytes, the largest whole MiB within it
 * (limit_bytes 20 MiB + 5 bytes is 20 MiB). A range that holds no such
 * size is OUT_OF_RANGE.
 */
export function sizeFor(p: Placement, wanted: number, range: Range): number {
  if (p.layout === "dir") return wanted;
  const floor = p.layout === "image" ? MIN_IMAGE_BYTES[p.fsType ?? DEFAULT_IMAGE_FS] : MiB;
  const rounded = Math.ceil(Math.max(wanted, floor) / MiB) * MiB;
  const size = inWholeMiB(rounded, range);
  if (size < floor || !fits(size, range)) {
    throw outOfRange(
      `${p.layout} volumes${p.fsType ? ` with ${p.fsType}` : ""} come in whole MiB of at least ${floor} bytes; ` +
        `${rounded} bytes is outside the requested range [${range.required}, ${range.limit || "no limit"}]`,
    );
  }
  return size;
}

/**
 * The size of a volume asked for none (a CreateVolume with no capacity_range, an inline
 * volume with no `size`): the driver's default, 1 GiB. A capacity: none volume's size is a
 * label nothing enforces: on a root smaller than the default it gets the root's size, the
 * most it could ever hold. One whose size is enforced keeps the default, and a root that
 * cannot hold it refuses the volume.
 */
export function defaultSize(driver: Driver, p: Placement, fsTotal: number): number {
  const bytes = driver.config.defaultCapacityBytes;
  return isEnforced(p) ? bytes : Math.min(bytes, fsTotal);
}

/** `wanted` rounded up to a whole MiB, or where that passes limit_bytes the largest whole MiB within it (maybe outside the range). */
export function inWholeMiB(wanted: number, range: Range): number {
  const rounded = Math.ceil(wanted / MiB) * MiB;
  return range.limit > 0 && rounded > range.limit ? Math.floor(range.limit / MiB) * MiB : rounded;
}

/** Whether volumes of this placement make a promise (their size is enforced). */
export function isEnforced(p: Placement): boolean {
  return p.layout !== "dir" || p.withQuota;
}

/** Bytes that can still be promised on this node: free space less what enforced volumes may still claim. */
export async function promisable(driver: Driver): Promise<number> {
  const available = await freeOnceBuilt(driver);
  return Math.max(0, available - hostPathStore(driver).ledger.outstanding());
}

/** The root's free space, read once the ledger's start-up rebuild is done (before what the ledger holds). */
async function freeOnceBuilt(driver: Driver): Promise<number> {
  const { availableBytes } = await hostPathStore(driver).usage();
  await hostPathStore(driver).ledger.ready;
  return availableBytes;
}

/**
 * Check that `bytes` more can be promised and hold them until the caller
 * records the promise (or fails). RESOURCE_EXHAUSTED when they cannot.
 */
export async function holdSpace(driver: Driver, bytes: number, what: string): Promise<() => void> {
  const available = await freeOnceBuilt(driver);
  // What the ledger holds is read here, with no await between it, the check
  // and the hold: two calls cannot both pass on the same free space, even
  // when both were waiting for the same statfs or for the start-up rebuild.
  const free = Math.max(0, available - hostPathStore(driver).ledger.outstanding());
  if (bytes > free) {
    throw resourceExhausted(`${what} needs ${bytes} bytes, but this node can promise only ${free} more (free space less the room other volumes may still claim)`);
  }
  return hostPathStore(driver).ledger.reserve(bytes);
}

/**
 * How a volume made from `source` is kept. Its content is a copy, so it
 * keeps the source's form: a tree stays a directory (with a quota if the
 * StorageClass asks for one, or by this node's default), an image stays an
 * image of the same file system, a block device a block device. A
 * StorageClass that asks for another form gets INVALID_ARGUMENT.
 */
export function placeFromSource(source: SourcePlan, parameters: Record<string, string>, caps: readonly Capability[], driver: Driver): Placement {
  const asked = place(parameters, caps, driver);
  const fileLike = (l: VolumeLayout) => l !== "dir";
  if (parameters.capacity === undefined && asked.layout !== source.layout) {
    if (source.layout === "dir") return { layout: "dir", withQuota: defaultMode(driver) === "quota" };
    if (source.layout === "image") return { layout: "image", withQuota: false, fsType: (source.fsType as FsType | undefined) ?? DEFAULT_IMAGE_FS };
  }
  if (asked.layout !== source.layout || fileLike(asked.layout) !== fileLike(source.layout)) {
    throw invalidArgument(
      `the content source ${describeSource(source.contentSource)} is a ${source.layout} volume, but the new volume would be ${asked.layout}; ` +
        "a copy keeps its source's form (omit capacity, or use the source's)",
    );
  }
  if (asked.layout === "image" && source.fsType && asked.fsType !== source.fsType) {
    return { ...asked, fsType: source.fsType as FsType };
  }
  return asked;
}
