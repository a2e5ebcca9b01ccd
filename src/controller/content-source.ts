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
 * that ends at the deadline (storage/hold-still.ts); and a copy on a share
 * that makes no progress for the share timeout is stopped (UNAVAILABLE).
 */
import type { VolumeContentSource } from "../gen/csi";
import { invalidArgument, notFound, outOfRange } from "../csi/errors";
import { snapshotKey } from "../csi/snapshots";
import { checkToken } from "../csi/validate";
import { copyContent, type CopyOptions, type ShareEnd } from "../storage/copy-content";
import { readSnapshot } from "../storage/content-sources";
import type { ContentSource, VolumeLayout } from "../storage/volume-record";
import type { Driver } from "../server/driver";
import type { CallContext } from "../server/rpc";
import type { SourcePlan } from "../backends/backend";
import { chooseSize, type Range } from "./capacity";
import { findSnapshot, homeOf } from "./snapshot-homes";
import { lookUp, volumeKey } from "./volume-view";

export type { SourcePlan };

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
  let found: { copy: (to: string, into?: ShareEnd) => Promise<void>; layout: VolumeLayout; sizeBytes: number; what: string; fsType?: string } | undefined;
  const hold = {
    markersDir: driver.snapshots.markersDir,
    log: call.log,
    get signal() {
      return call.signal;
    },
  };
  const options = { viewsDir: driver.snapshots.viewsDir, hold };
  const opts = (into: ShareEnd | undefined): CopyOptions => (into ? { ...options, into } : options);
  if (src.snapshot) {
    const snapshotId = checkToken(src.snapshot.snapshotId, "volume_content_source.snapshot.snapshot_id");
    contentSource = { snapshotId };
    // A shared volume's snapshot is on its share, which may be mounted for the copy.
    const home = homeOf(driver, snapshotId);
    const snap = await findSnapshot(driver, snapshotId);
    if (snap) {
      const copy = home
        ? (to: string, into?: ShareEnd) => home.read(driver, snap, (content) => copyContent(content, to, opts(into)))
        : (to: string, into?: ShareEnd) => readSnapshot(driver.snapshots, snap, (content) => copyContent(content, to, opts(into)));
      found = { copy, layout: snap.layout, sizeBytes: snap.sizeBytes, what: `snapshot ${snapshotId}`, fsType: snap.fsType };
    }
  } else if (src.volume) {
    const volumeId = checkToken(src.volume.volumeId, "volume_content_source.volume.volume_id");
    contentSource = { volumeId };
    const { backend, record: vol } = await lookUp(driver, volumeId);
    if (backend && vol) {
      // Where the content is, and whether it may be copied now, is its backend's (a share may be mounted for the copy).
      const from = backend.source(driver, vol, call);
      const copy = (to: string, into?: ShareEnd) => from.read((content) => copyContent(content, to, opts(into)));
      found = { copy, layout: from.layout, sizeBytes: vol.capacityBytes, what: `volume ${volumeId}`, ...(from.fsType ? { fsType: from.fsType } : {}) };
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
    fill: async (staging, into) => {
      await copy(staging, into);
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

export function sameSource(a: ContentSource | undefined, b: ContentSource | undefined): boolean {
  return (a?.snapshotId ?? "") === (b?.snapshotId ?? "") && (a?.volumeId ?? "") === (b?.volumeId ?? "");
}

export function describeSource(s: ContentSource | undefined): string {
  if (s?.snapshotId) return `snapshot ${s.snapshotId}`;
  if (s?.volumeId) return `volume ${s.volumeId}`;
  return "no content source";
}
