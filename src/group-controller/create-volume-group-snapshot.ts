/**
 * CreateVolumeGroupSnapshot: snapshot several volumes as one.
 *
 * The point of a group (say, a database's data and log volumes) is that its
 * snapshots agree: the spec demands write-order consistency across the
 * volumes "or fail if that's not possible". A hostPath snapshot copies
 * files one after another, which cannot freeze writes to several
 * directories at one instant; so the group is taken only when none of its
 * volumes is mounted anywhere (no pod can be writing), and is refused with
 * FAILED_PRECONDITION otherwise. Stop the workload, take the group
 * snapshot, start it again.
 *
 * Idempotent by name: the name decides the group's ID and each member's ID
 * (group + volume), and the group's record, written after every member, is
 * the commit point. A retry of a committed group returns it; the same name
 * for other volumes is ALREADY_EXISTS. Leftover members of an attempt that
 * never committed are deleted and cut again, so every member dates from the
 * same attempt; if any copy fails, the members made so far are removed.
 */
import type { CreateVolumeGroupSnapshotRequest, CreateVolumeGroupSnapshotResponse } from "../gen/csi";
import { volumeRef } from "../storage/volumes";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "../csi/errors";
import { checkSnapshotParameters, groupSnapshotKey, toCsiGroupSnapshot } from "../csi/snapshots";
import { checkMap, checkToken } from "../csi/validate";
import { volumeKey } from "../controller/volume-view";
import { mountsOfDir } from "../mount/volume-mounts";
import { snapshotVolume } from "../storage/content-sources";
import type { SnapshotRecord } from "../storage/snapshot-record";
import type { VolumeRecord } from "../storage/volume-record";
import { defineRpc } from "../server/rpc";
import type { Driver } from "../server/driver";
import { readMembers } from "./group-members";

export const createVolumeGroupSnapshot = defineRpc<CreateVolumeGroupSnapshotRequest, CreateVolumeGroupSnapshotResponse>({
  lockKeys: (req, driver) => [
    ...(req.name ? groupSnapshotKey(driver.snapshots.groupIdForName(req.name)) : []),
    ...[...new Set(req.sourceVolumeIds ?? [])].flatMap((id) => volumeKey(id)),
  ],

  async handle(req, { driver, log, signal }) {
    const name = checkToken(req.name, "name");
    const sourceVolumeIds = (req.sourceVolumeIds ?? []).map((id, i) => checkToken(id, `source_volume_ids[${i}]`));
    if (sourceVolumeIds.length === 0) throw invalidArgument("source_volume_ids is required: name at least one volume");
    if (new Set(sourceVolumeIds).size !== sourceVolumeIds.length) throw invalidArgument("source_volume_ids names a volume more than once");
    const parameters = checkSnapshotParameters(req.parameters);
    checkMap(req.secrets, "secrets");
    const store = driver.snapshots;
    const groupSnapshotId = store.groupIdForName(name);

    const existing = await store.getGroup(groupSnapshotId);
    if (existing) {
      const same = existing.sourceVolumeIds.length === sourceVolumeIds.length && sourceVolumeIds.every((id) => existing.sourceVolumeIds.includes(id));
      if (!same) {
        throw alreadyExists(
          `group snapshot ${JSON.stringify(name)} already exists of volumes [${existing.sourceVolumeIds.join(", ")}], not [${sourceVolumeIds.join(", ")}]`,
        );
      }
      return { groupSnapshot: toCsiGroupSnapshot(existing, await readMembers(store, existing)) };
    }

    const volumes: VolumeRecord[] = [];
    for (const id of sourceVolumeIds) {
      if (volumeRef(id).backend === "nfs") {
        // Pods on any node may be writing a shared volume, and the controller cannot see their
        // mounts, so it cannot promise a write-order consistent group: refuse rather than pretend.
        throw invalidArgument(`volume ${id} is a shared (nfs) volume; group snapshots are offered for hostpath volumes only`);
      }
      const volume = await driver.hostpath.get(id);
      if (!volume) throw notFound(`source volume ${id} does not exist`);
      volumes.push(volume);
    }
    for (const volume of volumes) requireQuiet(driver, volume);

    const createdAt = new Date().toISOString();
    const memberIds = volumes.map((v) => store.memberId(groupSnapshotId, v.volumeId));
    const members: SnapshotRecord[] = [];
    try {
      for (const id of memberIds) await store.delete(id); // leftovers of an attempt that never committed
      for (const [i, volume] of volumes.entries()) {
        const spec = { snapshotId: memberIds[i]!, name: `${name}/${volume.volumeId}`, parameters, groupSnapshotId };
        members.push((await snapshotVolume(driver.hostpath, store, volume, spec, { signal, log })).record);
      }
      const group = await store.commitGroup({ groupSnapshotId, name, sourceVolumeIds, snapshotIds: memberIds, parameters, createdAt });
      return { groupSnapshot: toCsiGroupSnapshot(group, members) };
    } catch (err) {
      for (const id of memberIds) {
        await store.delete(id).catch((e: unknown) => log.warn("could not remove a member of a failed group snapshot", { snapshotId: id, error: String(e) }));
      }
      throw err;
    }
  },
});

/** Refuse a volume that is mounted anywhere but in our own copy views: a pod may be writing it. */
function requireQuiet(driver: Driver, volume: VolumeRecord): void {
  const views = driver.snapshots.viewsDir + "/";
  const mounts = mountsOfDir(driver.hostpath.dataDir(volume.volumeId)).mounts.filter((m) => !m.mountPoint.startsWith(views));
  if (mounts.length > 0) {
    throw failedPrecondition(
      `volume ${volume.volumeId} is in use (mounted at ${mounts.map((m) => m.mountPoint).join(", ")}); a group snapshot is write-order ` +
        `consistent only across volumes no pod can write: stop the workload, or snapshot the volumes one by one`,
    );
  }
}
