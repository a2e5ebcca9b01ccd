/**
 * CreateVolume's volume_content_source: a new volume that starts as a copy
 * of a snapshot (restore) or of another volume (clone).
 *
 * The rules, from the spec:
 *   - the source must exist, else NOT_FOUND — unless the volume being asked
 *     for already exists from that source (a retry after the source was
 *     deleted is still the same, successful request);
 *   - the new volume may not be smaller than the source (a snapshot's
 *     size_bytes is its volume's capacity), else OUT_OF_RANGE; with no
 *     capacity_range it gets the source's size if that is larger than the
 *     default;
 *   - the same name with a different source is ALREADY_EXISTS.
 * The copy itself happens inside the volume store's create, before its
 * commit point, so a crash mid-copy leaves no half-made volume. It is not
 * abandoned when the CO's deadline passes (see storage/copy-content.ts),
 * except the copy of a volume in use whose file system is frozen for it:
 * that ends at the deadline (storage/hold-still.ts).
 */
import type { VolumeContentSource } from "../gen/csi";
import { invalidArgument, notFound, outOfRange } from "../csi/errors";
import { snapshotKey } from "../csi/snapshots";
import { checkToken } from "../csi/validate";
import { copyContent } from "../storage/copy-content";
import { getVolume, locationOf } from "../storage/volumes";
import { snapshotContent, volumeContent } from "../storage/content-sources";
import type { ContentSource } from "../storage/volume-record";
import type { Capability } from "../csi/capabilities";
import { DEFAULT_IMAGE_FS, type FsType } from "../mount/filesystem";
import type { Driver } from "../server/driver";
import type { CallContext } from "../server/rpc";
import type { VolumeLayout } from "../storage/volume-record";
import { defaultMode, place, type Placement } from "./placement";
import { chooseSize, type Range } from "./capacity";
import { volumeKey } from "./volume-view";

export interface SourcePlan {
  /** What the new volume's record will say it came from. */
  contentSource: ContentSource;
  /** How the source keeps its content; the new volume must keep it the same way. */
  layout: VolumeLayout;
  /** For an "image" source, the file system inside it. */
  fsType?: string;
  /** The least size the new volume may have (0 when the source is gone and only a retry can succeed). */
  minBytes: number;
  /** Copies the source into the new volume's staging path; absent when the source is gone. */
  fill?: (staging: string) => Promise<void>;
}

/** Lock keys for the source: it must not be deleted while it is copied. */
export function contentSourceKeys(src: VolumeContentSource | undefined): string[] {
  if (src?.snapshot) return snapshotKey(src.snapshot.snapshotId);
  if (src?.volume) return volumeKey(src.volume.volumeId);
  return [];
}

/**
 * Check the requested source; undefined when the request has none. `call`
 * lends a clone of a volume in use its deadline and log (read only if the
 * volume must be frozen for the copy).
 */
export async function planContentSource(
  src: VolumeContentSource | undefined,
  driver: Driver,
  call: Pick<CallContext, "signal" | "log">,
): Promise<SourcePlan | undefined> {
  if (!src) return undefined;
  let contentSource: ContentSource;
  let found: { copy: (to: string) => Promise<void>; layout: VolumeLayout; sizeBytes: number; what: string; fsType?: string } | undefined;
  const hold = {
    markersDir: driver.snapshots.markersDir,
    log: call.log,
    get signal() {
      return call.signal;
    },
  };
  const opts = { viewsDir: driver.snapshots.viewsDir, hold };
  if (src.snapshot) {
    const snapshotId = checkToken(src.snapshot.snapshotId, "volume_content_source.snapshot.snapshot_id");
    contentSource = { snapshotId };
    const snap = await driver.snapshots.get(snapshotId);
    if (snap) {
      const content = snapshotContent(driver.snapshots, snap);
      found = { copy: (to) => copyContent(content, to, opts), layout: content.layout, sizeBytes: snap.sizeBytes, what: `snapshot ${snapshotId}`, fsType: snap.fsType };
    }
  } else if (src.volume) {
    const volumeId = checkToken(src.volume.volumeId, "volume_content_source.volume.volume_id");
    contentSource = { volumeId };
    const vol = await getVolume(driver, volumeId);
    const loc = vol && locationOf(vol);
    if (vol && loc) {
      // A shared volume's directory is reached through the share (mounted for the copy if it is remote).
      const copy = (to: string) => driver.shared.withVolumeDir(loc, (dir) => copyContent({ path: dir, layout: "dir", live: true }, to, opts));
      found = { copy, layout: "dir", sizeBytes: vol.capacityBytes, what: `volume ${volumeId}` };
    } else if (vol) {
      const content = volumeContent(driver.hostpath, vol);
      found = { copy: (to) => copyContent(content, to, opts), layout: content.layout, sizeBytes: vol.capacityBytes, what: `volume ${volumeId}`, fsType: vol.fsType };
    }
  } else {
    throw invalidArgument("volume_content_source names neither a snapshot nor a volume");
  }

  if (!found) {
    throw notFound(`the content source ${contentSource.snapshotId ? `snapshot ${contentSource.snapshotId}` : `volume ${contentSource.volumeId}`} does not exist`);
  }
  const { copy, sizeBytes, what } = found;
  return {
    contentSource,
    layout: found.layout,
    ...(found.fsType ? { fsType: found.fsType } : {}),
    minBytes: sizeBytes,
    fill: async (staging) => {
      await copy(staging);
      driver.log.debug("copied content source into the new volume", { source: what });
    },
  };
}

/** The size of a volume made from a source of `minBytes`. */
export function sizeWithSource(r: Range, defaultBytes: number, minBytes: number): number {
  if (r.required > 0 && r.required < minBytes) {
    throw outOfRange(`required_bytes ${r.required} is smaller than the content source (${minBytes} bytes); a volume cannot be smaller than its source`);
  }
  if (r.limit > 0 && r.limit < minBytes) {
    throw outOfRange(`limit_bytes ${r.limit} is smaller than the content source (${minBytes} bytes); a volume cannot be smaller than its source`);
  }
  return Math.max(chooseSize(r, defaultBytes), minBytes);
}

/** The source a request names, as a record would keep it (no look-up: for comparing with an existing volume). */
export function requestedSource(src: VolumeContentSource | undefined): ContentSource | undefined {
  if (src?.snapshot) return { snapshotId: src.snapshot.snapshotId ?? "" };
  if (src?.volume) return { volumeId: src.volume.volumeId ?? "" };
  return undefined;
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

export function sameSource(a: ContentSource | undefined, b: ContentSource | undefined): boolean {
  return (a?.snapshotId ?? "") === (b?.snapshotId ?? "") && (a?.volumeId ?? "") === (b?.volumeId ?? "");
}

export function describeSource(s: ContentSource | undefined): string {
  if (s?.snapshotId) return `snapshot ${s.snapshotId}`;
  if (s?.volumeId) return `volume ${s.volumeId}`;
  return "no content source";
}
