/**
 * CreateVolumeGroupSnapshot: snapshot several volumes as one.
 *
 * The point of a group (say, a database's data and log volumes) is that its
 * snapshots agree: the spec demands write-order consistency across the
 * volumes "or fail if that's not possible". So every member is held still
 * before any is copied (storage/hold-still.ts): the file system of each
 * image volume in use is frozen, all together, and thawed once every copy
 * is made — one point in time for the whole group, for at most the call's
 * deadline. Members are copied into scratch space first and committed
 * after the thaw, so writers wait for the copies only, not for the flushes
 * and records. What cannot be held still is refused with
 * FAILED_PRECONDITION, naming the mounts: a directory volume in use (its
 * writers could only be stopped by freezing the node's own file system)
 * and a raw block volume in use (a device has no freeze). Stop the
 * workload, take the group snapshot, start it again — or keep such
 * volumes as image volumes. A volume whose backend never offers group
 * snapshots (backend.groupSnapshots) is FAILED_PRECONDITION as well: the
 * spec's code for volumes that cannot be snapshotted together as they are
 * configured. A volume that does not exist is NOT_FOUND.
 *
 * Idempotent by name: the name decides the group's ID and each member's ID
 * (group + volume), and the group's record, written after every member, is
 * the commit point. A retry of a committed group returns it; the same name
 * for other volumes or other parameters is ALREADY_EXISTS. The members to
 * come are noted before the first is made (storage/group-pending.ts): if
 * any copy fails, the members made so far are removed, and what cannot be
 * is removed by the next call on the name, before it cuts anything — so
 * every member dates from the same attempt, and none of an earlier group
 * of the name (one whose delete failed part-way) comes back with this one.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import type { CreateVolumeGroupSnapshotRequest, CreateVolumeGroupSnapshotResponse } from "../gen/csi";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "../csi/errors";
import { checkSnapshotParameters, groupSnapshotKey, toCsiGroupSnapshot } from "../csi/snapshots";
import { checkMap, checkToken } from "../csi/validate";
import { defining } from "../controller/parameters";
import { lookUp, volumeKey } from "../controller/volume-view";
import type { VolumeSource } from "../backends/backend";
import { snapshotRecordOf } from "../storage/content-sources";
import { copyContent, flushCopy, type Content } from "../storage/copy-content";
import { holdStill } from "../storage/hold-still";
import type { SnapshotRecord } from "../storage/snapshot-record";
import type { VolumeRecord } from "../storage/volume-record";
import { defineRpc } from "../server/rpc";
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
      // As for CreateVolume: the parameters that define a group count, the external-snapshotter's
      // csi.storage.k8s.io/ metadata does not. (No other key gets this far today: see checkSnapshotParameters.)
      if (defining(existing.parameters) !== defining(parameters)) {
        throw alreadyExists(`group snapshot ${JSON.stringify(name)} already exists with different parameters`);
      }
      return { groupSnapshot: toCsiGroupSnapshot(existing, await readMembers(store, existing)) };
    }

    const call = { signal, log };
    const volumes: VolumeRecord[] = [];
    const sources: VolumeSource[] = [];
    for (const id of sourceVolumeIds) {
      const { backend, record } = await lookUp(driver, id);
      // Whether the volume is there comes first: a shared one this process holds no record of may
      // be (another node's provisioner made it), which only its backend can tell.
      if (!backend || (!record && !(await backend.existsElsewhere?.(id)))) throw notFound(`source volume ${id} does not exist`);
      if (!backend.groupSnapshots) {
        // Pods on any node may be writing a shared volume, and the controller cannot see their
        // mounts, so it cannot promise a write-order consistent group: refuse rather than pretend.
        // The spec's code for volumes whose configuration keeps them from one group is FAILED_PRECONDITION.
        throw failedPrecondition(
          `volume ${id} is a ${backend.name} volume (${backend.summary}); ` +
            "group snapshots are offered only for volumes this node can hold still; snapshot it on its own (CreateSnapshot)",
        );
      }
      if (!record) throw notFound(`source volume ${id} does not exist`);
      volumes.push(record);
      sources.push(backend.source(driver, record, call));
    }
    for (const source of sources) {
      const problem = source.groupProblem();
      if (problem) {
        throw failedPrecondition(`${problem}; a group snapshot is write-order consistent only across volumes it can hold still: stop the workload, or snapshot the volumes one by one`);
      }
    }

    const createdAt = new Date().toISOString();
    const memberIds = volumes.map((v) => store.memberId(groupSnapshotId, v.volumeId));
    const groupSpec = { groupSnapshotId, name, sourceVolumeIds, snapshotIds: memberIds, parameters, createdAt };
    // Members an earlier call on the name could not remove (a delete, an attempt that never committed) go first:
    // none may come back with this group.
    await store.settleGroup(groupSnapshotId);
    const scratch = memberIds.map((id) => store.scratchPath(id));
    const members: SnapshotRecord[] = [];
    await store.openGroup(groupSpec); // the note of the members to come, before the first
    try {
      const hold = { markersDir: store.markersDir, signal, log };
      await readAll(sources, (contents) =>
        holdStill(contents, hold, async (held) => {
          for (const [i, from] of contents.entries()) await copyContent(from, scratch[i]!, { viewsDir: store.viewsDir, held, flush: false });
        }),
      );
      await flushCopy(path.dirname(scratch[0]!));
      for (const [i, volume] of volumes.entries()) {
        const spec = { snapshotId: memberIds[i]!, name: `${name}/${volume.volumeId}`, parameters, groupSnapshotId, createdAt };
        const made = await store.create(snapshotRecordOf(volume, spec, sources[i]!.layout), (staging) => fsp.rename(scratch[i]!, staging));
        members.push(made.record);
      }
      const group = await store.commitGroup(groupSpec);
      return { groupSnapshot: toCsiGroupSnapshot(group, members) };
    } catch (err) {
      for (const p of scratch) await fsp.rm(p, { recursive: true, force: true });
      // The members made so far; what cannot go stays in the note, for the next call on the name or the sweep.
      await store.settleGroup(groupSnapshotId).catch((e: unknown) => {
        log.warn("could not remove the members of a failed group snapshot", { groupSnapshotId, error: String(e) });
      });
      throw err;
    }
  },
});

/** Run `fn` with every source's content reachable at once (each checked, each share mounted, until it returns). */
function readAll<T>(sources: readonly VolumeSource[], fn: (contents: Content[]) => Promise<T>, done: Content[] = []): Promise<T> {
  if (done.length === sources.length) return fn(done);
  return sources[done.length]!.read((content) => readAll(sources, fn, [...done, content]));
}
