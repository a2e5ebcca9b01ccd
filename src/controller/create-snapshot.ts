/**
 * CreateSnapshot: cut a point-in-time copy of a volume.
 *
 * Idempotent by name, like CreateVolume: the name decides the snapshot ID,
 * so a retry finds the snapshot the first call made and returns it — even
 * if its source volume has been deleted since. The same name for a
 * different source volume is ALREADY_EXISTS. The copy is made inside the
 * call (reflinked where the file system can, see storage/copy-content.ts),
 * so the reply always says ready_to_use. A volume that pods are writing
 * is held still for the copy — an image volume's file system frozen, a
 * block volume's device flushed (storage/hold-still.ts) — so the snapshot
 * holds everything written before the call; a directory is copied file by
 * file. A shared volume's snapshot is a copy of its directory, kept on
 * its share, where every node can find it from its ID
 * (backends/nfs/share-snapshots.ts); its ID then depends on the volume's
 * share as well as on the name. Names are unique across both places.
 */
import type { CreateSnapshotRequest, CreateSnapshotResponse } from "../gen/csi";
import { alreadyExists, notFound } from "../csi/errors";
import { checkSnapshotParameters, snapshotKey, toCsiSnapshot } from "../csi/snapshots";
import { checkMap, checkToken } from "../csi/validate";
import { snapshotVolume } from "../storage/content-sources";
import { defineRpc } from "../server/rpc";
import type { SnapshotRecord } from "../storage/snapshot-record";
import { homeFor, snapshotHomes } from "./snapshot-homes";
import { lookUp, volumeKey } from "./volume-view";

export const createSnapshot = defineRpc<CreateSnapshotRequest, CreateSnapshotResponse>({
  // The source is locked too: it must not be deleted while it is copied.
  lockKeys: (req, driver) => [
    ...(req.name ? snapshotKey(driver.snapshots.idForName(req.name)) : []),
    ...(req.name ? snapshotKey(homeFor(driver, req.name, req.sourceVolumeId)?.snapshotId) : []),
    ...volumeKey(req.sourceVolumeId),
  ],

  async handle(req, { driver, signal, log }) {
    const name = checkToken(req.name, "name");
    const sourceVolumeId = checkToken(req.sourceVolumeId, "source_volume_id");
    const parameters = checkSnapshotParameters(req.parameters);
    checkMap(req.secrets, "secrets");

    const snapshotId = driver.snapshots.idForName(name);
    const existing = await driver.snapshots.get(snapshotId);
    if (existing) return { snapshot: toCsiSnapshot(sameSource(existing, name, sourceVolumeId)) };
    const placed = homeFor(driver, name, sourceVolumeId);
    const there = placed && (await placed.home.get(placed.snapshotId));
    if (placed && there) {
      await placed.home.found(sameSource(there, name, sourceVolumeId));
      return { snapshot: toCsiSnapshot(there) };
    }
    for (const home of snapshotHomes(driver)) {
      const other = home.named(name);
      if (other !== undefined && other !== placed?.snapshotId) throw alreadyExists(`snapshot ${JSON.stringify(name)} already exists as ${other}, not of volume ${sourceVolumeId}`);
    }
    if (placed) {
      const record = await placed.home.create(driver, { snapshotId: placed.snapshotId, name, sourceVolumeId, parameters }, { signal, log });
      return { snapshot: toCsiSnapshot(record) };
    }
    const { backend, record: volume } = await lookUp(driver, sourceVolumeId);
    if (!backend || !volume) throw notFound(`source volume ${sourceVolumeId} does not exist`);
    const call = { signal, log };
    const { record } = await snapshotVolume(driver.snapshots, volume, backend.source(driver, volume, call), { snapshotId, name, parameters }, call);
    return { snapshot: toCsiSnapshot(record) };
  },
});

/** A snapshot found under the name asked for, if it is of the volume asked for; ALREADY_EXISTS if not. */
function sameSource(existing: SnapshotRecord, name: string, sourceVolumeId: string): SnapshotRecord {
  if (existing.sourceVolumeId !== sourceVolumeId) {
    throw alreadyExists(`snapshot ${JSON.stringify(name)} already exists, of volume ${existing.sourceVolumeId}, not ${sourceVolumeId}`);
  }
  return existing;
}
