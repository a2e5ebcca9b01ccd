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
 * file. A shared volume's snapshot is a copy of its directory, kept in
 * this controller's snapshot store.
 */
import type { CreateSnapshotRequest, CreateSnapshotResponse } from "../gen/csi";
import { alreadyExists, notFound } from "../csi/errors";
import { checkSnapshotParameters, snapshotKey, toCsiSnapshot } from "../csi/snapshots";
import { checkMap, checkToken } from "../csi/validate";
import { snapshotVolume } from "../storage/content-sources";
import { defineRpc } from "../server/rpc";
import { lookUp, volumeKey } from "./volume-view";

export const createSnapshot = defineRpc<CreateSnapshotRequest, CreateSnapshotResponse>({
  // The source is locked too: it must not be deleted while it is copied.
  lockKeys: (req, driver) => [...(req.name ? snapshotKey(driver.snapshots.idForName(req.name)) : []), ...volumeKey(req.sourceVolumeId)],

  async handle(req, { driver, signal, log }) {
    const name = checkToken(req.name, "name");
    const sourceVolumeId = checkToken(req.sourceVolumeId, "source_volume_id");
    const parameters = checkSnapshotParameters(req.parameters);
    checkMap(req.secrets, "secrets");

    const snapshotId = driver.snapshots.idForName(name);
    const existing = await driver.snapshots.get(snapshotId);
    if (existing) {
      if (existing.sourceVolumeId !== sourceVolumeId) {
        throw alreadyExists(`snapshot ${JSON.stringify(name)} already exists, of volume ${existing.sourceVolumeId}, not ${sourceVolumeId}`);
      }
      return { snapshot: toCsiSnapshot(existing) };
    }
    const { backend, record: volume } = await lookUp(driver, sourceVolumeId);
    if (!backend || !volume) throw notFound(`source volume ${sourceVolumeId} does not exist`);
    const call = { signal, log };
    const { record } = await snapshotVolume(driver.snapshots, volume, backend.source(driver, volume, call), { snapshotId, name, parameters }, call);
    return { snapshot: toCsiSnapshot(record) };
  },
});
