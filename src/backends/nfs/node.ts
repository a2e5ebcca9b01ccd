/**
 * Shared (nfs) volumes on the node.
 *
 * The node needs no record of a shared volume: its ID (and, for the
 * record form, volume_context) says where its directory is. NodeStage
 * mounts it at the staging path — `mount -t nfs server:/share/subDir`
 * with the StorageClass's mountOptions, or a bind of <share>/<subDir> when
 * the share is a local path every node has mounted — and NodePublish binds
 * the staging path into each pod. All of these go through mount(8) in a
 * child process with a deadline (mount/mount-command.ts), and every look
 * at a path on the share goes through a share agent (share-io.ts): a hung
 * server costs a call its deadline, never the driver. A mount stopped at its
 * deadline that sleeps on in the kernel is remembered under its share, and
 * until it exits calls there answer UNAVAILABLE at once (storage/stuck-tools.ts).
 *
 * Stale mounts. When the server's export is replaced or the directory is
 * removed and made again, the file handle the node holds goes stale: every
 * access answers ESTALE, and only a fresh mount heals it. NodeGetVolumeStats
 * reports that (and a share that stopped answering) as VolumeCondition
 * abnormal; the next NodeStageVolume finds its staging mount unhealthy,
 * detaches it and mounts again. A local share shows the same event as a
 * mount holding a removed directory (link count 0), handled the same way.
 * Only what the share answered counts: one that gave no answer, or was not
 * asked because a tool stopped there is still stuck, says nothing of the
 * mount — neither whether it is healthy nor, where only the share can say
 * (a local share's mount this process did not make), whether it is the
 * volume's — and could take no new one. Then every node call that needs to
 * know answers UNAVAILABLE and leaves every mount as it is.
 */
import type { Capability } from "../../csi/capabilities";
import type { VolumeUsage } from "../../gen/csi";
import { unsupportedReason } from "../../csi/capabilities";
import { alreadyExists, CsiError, failedPrecondition, invalidArgument, notFound, unavailable } from "../../csi/errors";
import { CONTEXT } from "../../controller/volume-view";
import { bindArgs, nfsMountArgs, remountBindArgs, runMount, type MountOnShare } from "../../mount/mount-command";
import { mountTable, type MountEntry } from "../../mount/mountinfo";
import { splitMountFlags, type BindFlags } from "../../mount/options";
import type { Driver } from "../../server/driver";
import { shareNotAllowed } from "./allowed-shares";
import { isUnhealthy, shareErrno } from "./share-io";
import { describeShare } from "./share-mounts";
import { mountIdentity, sourceDir, type MountIdentity } from "./volume-mounts";
import { sharedProfile } from "./profile";
import { sharedStore } from "./store";
import { nfsSource, parseSharedId, serverProblem, sharePathProblem, subDirProblem, type SharedLocation, type SharedVolumeId } from "./volume-id";
import type { FsUsage } from "../../storage/fs-usage";
import { vouchesFor, type MountRecord, type RecordKind } from "../../storage/node-records";
import type { VolumeRecord } from "../../storage/volume-record";
import { secondTargetProblem } from "../../node/single-writer";
import { describeMount, withMountTarget, type NodePath } from "../../node/node-path";
import { unmountOwned, type MountOwner } from "../../node/volume-owner";
import { volumeUsage } from "../../node/volume-usage";

export interface SharedNodeVolume {
  volumeId: string;
  location: SharedLocation;
  /** The controller's record, when this process has it (--mode all): the capabilities it was made for. */
  record: VolumeRecord | undefined;
}

/** Where the volume is, from its ID and volume_context (which must agree with it). */
export async function findSharedVolume(driver: Driver, volumeId: string, id: SharedVolumeId, ctx: Record<string, string>): Promise<SharedNodeVolume> {
  const record = await sharedStore(driver).records.get(id);
  const fromCtx = ctx[CONTEXT.subDir];
  let location: SharedLocation;
  if (id.form === "inline") {
    location = id.location;
  } else {
    const subDir = record?.shared?.subDir ?? fromCtx;
    if (subDir === undefined) {
      throw failedPrecondition(`volume ${volumeId} keeps its subDir in a record on the share; volume_context must carry ${CONTEXT.subDir}`);
    }
    const problem = subDirProblem(subDir);
    if (problem) throw invalidArgument(`volume_context ${CONTEXT.subDir}: ${problem}`);
    location = { ...id.share, subDir };
  }
  const given: [string, string][] = [
    [CONTEXT.server, location.server],
    [CONTEXT.share, location.share],
    [CONTEXT.subDir, location.subDir],
  ];
  for (const [k, want] of given) {
    if (ctx[k] !== undefined && ctx[k] !== want) throw invalidArgument(`volume_context ${k} ${JSON.stringify(ctx[k])} contradicts volume_id ${volumeId}`);
  }
  if (serverProblem(location.server) ?? sharePathProblem(location.share)) throw invalidArgument(`volume_id ${volumeId} names an unusable share`);
  // The ID names the share; only the administrator's shares are ever mounted (allowed-shares.ts).
  const refused = shareNotAllowed(driver.config.allowedShares, location);
  if (refused) throw notFound(`volume ${volumeId} is not one this driver may use: ${refused}`);
  return { volumeId, location, record: record?.volumeId === volumeId ? record : undefined };
}

/** The capability's mount flags for this volume: NFS options for an export, bind flags only for a local share. */
export function sharedCapability(vol: SharedNodeVolume, cap: Capability): { bind: BindFlags; fsOptions: string[] } {
  const split = splitMountFlags(cap.mountFlags);
  if (typeof split === "string") throw invalidArgument(split);
  if (!vol.location.server && split.fsOptions.length > 0) {
    throw invalidArgument(`mount flags ${split.fsOptions.join(", ")} apply to NFS mounts; this volume's share is a local path, bind-mounted`);
  }
  const why = unsupportedReason(cap, sharedProfile(vol.location));
  if (why) throw failedPrecondition(`volume ${vol.volumeId}: ${why}`);
  return split;
}

const what = (loc: SharedLocation) => `directory ${loc.subDir} on ${describeShare(loc)}`;

/** Every mount of a volume touches its share: not started while one stopped there is stuck, remembered there if it gets stuck (mount-command.ts). */
const onShare = (driver: Driver, loc: SharedLocation): MountOnShare => ({ share: describeShare(loc), stuck: sharedStore(driver).io.stuck });

/**
 * A test for "this mount shows the volume": an NFS mount of exactly its
 * source, or for a local share a bind of its directory (same device and
 * path inside it, as mountinfo shows). When the share could not be asked
 * (it does not answer), why: the caller decides.
 */
function identity(driver: Driver, loc: SharedLocation): Promise<MountIdentity> {
  return mountIdentity(sharedStore(driver).io, loc);
}

/**
 * Is the mount at `p` healthy? A bounded stat through it: what is wrong
 * with it as the share answered (stale, removed, an I/O error), or
 * undefined. A share that gave no answer — none within the deadline, or
 * not asked while a tool stopped there is still stuck in the kernel —
 * says nothing of the mount: that is thrown (UNAVAILABLE, as it came).
 */
async function healthProblem(driver: Driver, loc: SharedLocation, p: string): Promise<string | undefined> {
  try {
    const st = await sharedStore(driver).io.run<{ kind: string; nlink: number }>("probe", { path: p }, describeShare(loc));
    // What a stale NFS handle is on a local share: the mount holds a directory since removed.
    if (st.kind === "dir" && st.nlink === 0) return `the directory mounted at ${p} was removed from the share; NodeStageVolume mounts it again`;
    return undefined;
  } catch (err) {
    if (err instanceof CsiError) throw err;
    if (shareErrno(err) === "ESTALE") return `stale file handle at ${p}: the export or the directory was replaced on the server; NodeStageVolume mounts it again`;
    if (isUnhealthy(err)) return (err as Error).message;
    return `${p}: ${(err as Error).message}`;
  }
}

/** Does this node's record of a stage or a publish of volume `volumeId` vouch for mount `m` (this process made it)? */
export function recordedHere(driver: Driver, volumeId: string, m: MountEntry): boolean {
  return (["stage", "publish"] as const).some((kind) => vouchesFor(driver.nodeRecords.get(kind, m.mountPoint), volumeId, m));
}

/**
 * Is the mount at `p` this volume's (by identity, or by what this process
 * mounted there)? When only the share could say and it gave no answer (its
 * deadline passed, or a tool stopped there is still stuck), that
 * UNAVAILABLE: "not ours" would be a guess.
 */
async function isOurs(driver: Driver, vol: SharedNodeVolume, kind: "stage" | "publish", m: MountEntry): Promise<boolean> {
  if (vouchesFor(driver.nodeRecords.get(kind, m.mountPoint), vol.volumeId, m)) return true;
  const id = await identity(driver, vol.location);
  if ("unknown" in id) throw id.unknown;
  return id.test(m);
}

export async function stageShared(driver: Driver, vol: SharedNodeVolume, staging: NodePath, cap: Capability, readonly: boolean): Promise<void> {
  const { bind, fsOptions } = sharedCapability(vol, cap);
  const loc = vol.location;
  const current = mountTable().at(staging.real);
  if (current) {
    if (!(await isOurs(driver, vol, "stage", current))) throw alreadyExists(`something else is already mounted at ${staging.given}: ${describeMount(current)}`);
    const rec = driver.nodeRecords.get("stage", staging.real);
    if (rec && (rec.volumeId !== vol.volumeId || !sameCap(rec.capability, cap))) {
      throw alreadyExists(`volume ${vol.volumeId} is already staged at ${staging.given} with a different volume_capability`);
    }
    // A share that does not answer, or that has a stopped tool still stuck on it, cannot be checked and takes no new mount
    // (UNAVAILABLE, thrown here): what is staged stays as it is, and a retry once the share answers checks it.
    const problem = await healthProblem(driver, loc, staging.real);
    if (!problem) return applyGroup(driver, vol, cap, staging.real, readonly);
    driver.log.warn("staged shared volume is unhealthy; mounting it again", { volumeId: vol.volumeId, problem });
    await unmountOwned(staging, sharedOwner(vol, current));
  }
  const cfg = { program: driver.config.mountProgram, timeoutMs: driver.config.mountTimeoutMs };
  const flagWords = [...bind.words.filter((w) => w !== "bind" && w !== "defaults"), ...(readonly ? ["ro"] : [])];
  // mount(8) is given the checked path (it runs in its own process); the
  // place is held open meanwhile, and must be an empty directory.
  await withRecord(driver, "stage", { volumeId: vol.volumeId, path: staging.real, capability: cap, readonly }, () =>
    withMountTarget(staging, "dir", async () => {
      if (loc.server) {
        await runMount(cfg, nfsMountArgs(nfsSource(loc.server, sourceDir(loc)), staging.real, [...fsOptions, ...flagWords]), what(loc), onShare(driver, loc));
      } else {
        await probeDirectory(driver, vol);
        await runMount(cfg, bindArgs(sourceDir(loc), staging.real), what(loc), onShare(driver, loc));
        if (flagWords.length > 0) await remountOrUndo(driver, vol, staging, flagWords);
      }
    }, { madeFor: vol.volumeId }),
  );
  await applyGroup(driver, vol, cap, staging.real, readonly);
}

export async function publishShared(
  driver: Driver,
  vol: SharedNodeVolume,
  p: { staging: NodePath; target: NodePath; cap: Capability; readonly: boolean; forcedReadOnly: boolean },
): Promise<void> {
  const { bind } = sharedCapability(vol, p.cap);
  const table = mountTable();
  const staged = table.at(p.staging.real);
  if (!staged || !(await isOurs(driver, vol, "stage", staged))) {
    throw failedPrecondition(`volume ${vol.volumeId} is not staged at ${p.staging.given}; call NodeStageVolume first`);
  }
  const mounts = table.of(staged);
  const readonly = p.readonly || p.forcedReadOnly || bind.words.includes("ro");
  const existing = table.at(p.target.real);
  if (existing && mounts.includes(existing)) {
    const rec = driver.nodeRecords.get("publish", p.target.real);
    const same = existing.options.includes("ro") === readonly && (!rec || (rec.readonly === p.readonly && sameCap(rec.capability, p.cap)));
    if (!same) throw alreadyExists(`volume ${vol.volumeId} is already published at ${p.target.given} with a different capability or readonly flag`);
    // Finish what a failed or interrupted call may have left undone: the group comes after the mount.
    return applyGroup(driver, vol, p.cap, p.target.real, readonly);
  }
  if (existing) throw alreadyExists(`something else is already mounted at ${p.target.given}: ${describeMount(existing)}`);
  const others = mounts.filter((m) => m.mountPoint !== p.staging.real).map((m) => m.mountPoint);
  const problem = secondTargetProblem(driver, { volumeId: vol.volumeId, capabilities: vol.record?.capabilities ?? [] }, p.cap, others);
  if (problem) throw failedPrecondition(problem);
  const unhealthy = await healthProblem(driver, vol.location, p.staging.real);
  if (unhealthy) throw unavailable(`volume ${vol.volumeId} cannot be published: ${unhealthy}`);

  const cfg = { program: driver.config.mountProgram, timeoutMs: driver.config.mountTimeoutMs };
  await withRecord(driver, "publish", { volumeId: vol.volumeId, path: p.target.real, capability: p.cap, readonly: p.readonly }, () =>
    withMountTarget(p.target, "dir", async () => {
      await runMount(cfg, bindArgs(p.staging.real, p.target.real), `volume ${vol.volumeId} at ${p.target.given}`, onShare(driver, vol.location));
      const words = [...bind.words.filter((w) => w !== "bind" && w !== "defaults" && w !== "ro"), ...(readonly ? ["ro"] : [])];
      if (words.length > 0) await remountOrUndo(driver, vol, p.target, words);
    }, { madeFor: vol.volumeId }),
  );
  await applyGroup(driver, vol, p.cap, p.target.real, readonly);
}

/**
 * Record what a stage or publish is about to mount, then mount, then note
 * in the record the mount that is there (its device and root): the record
 * vouches for that mount alone (storage/node-records.ts), so a mount that
 * lands while the share does not answer is still known to be the
 * volume's, and one put there by anyone else after it never is. If the
 * step fails and nothing is mounted at the place, the record goes again.
 */
async function withRecord(driver: Driver, kind: RecordKind, rec: MountRecord, mount: () => Promise<void>): Promise<void> {
  driver.nodeRecords.put(kind, rec);
  let failure: unknown;
  try {
    await mount();
  } catch (err) {
    failure = err;
  }
  const made = mountTable().at(rec.path);
  if (made) driver.nodeRecords.put(kind, { ...rec, mount: { device: made.device, root: made.root } });
  else if (failure !== undefined) driver.nodeRecords.remove(kind, rec.path);
  if (failure !== undefined) throw failure;
}

/** Undo owner for a mount just made (or found) for this volume: that mount, by its device and root. */
function sharedOwner(vol: SharedNodeVolume, made: MountEntry): MountOwner {
  return { volumeId: vol.volumeId, detach: true, placeKind: "dir", owns: (m) => m.device === made.device && m.root === made.root };
}

/** Per-mount flags on a fresh bind; never leave a half-configured (e.g. writable) mount behind. */
async function remountOrUndo(driver: Driver, vol: SharedNodeVolume, place: NodePath, words: string[]): Promise<void> {
  try {
    const cfg = { program: driver.config.mountProgram, timeoutMs: driver.config.mountTimeoutMs };
    await runMount(cfg, remountBindArgs(place.real, words), place.given, onShare(driver, vol.location));
  } catch (err) {
    const made = mountTable().at(place.real);
    if (made) await unmountOwned(place, sharedOwner(vol, made));
    throw err;
  }
}

async function probeDirectory(driver: Driver, vol: SharedNodeVolume): Promise<void> {
  const loc = vol.location;
  const store = sharedStore(driver);
  let kind: string;
  try {
    // Below the share, no symlink is followed: the directory bound is the one the ID names.
    ({ kind } = await store.io.run<{ kind: string }>("probe", { root: loc.share, sub: loc.subDir }, describeShare(loc)));
  } catch (err) {
    if (shareErrno(err) === "ENOENT") {
      // Removed behind the driver, its marker unreleased: the volume exists, its data does not. Else it was deleted.
      await store.refuseLost(vol.volumeId, parseSharedId(vol.volumeId)!, "staged");
      throw notFound(`volume ${vol.volumeId} does not exist: ${what(loc)} is gone`);
    }
    if (shareErrno(err) !== undefined) throw failedPrecondition(`${what(loc)} cannot be used: ${(err as Error).message}`);
    throw err;
  }
  if (kind !== "dir") throw failedPrecondition(`${what(loc)} is not a directory`);
}

async function applyGroup(driver: Driver, vol: SharedNodeVolume, cap: Capability, p: string, readonly: boolean): Promise<void> {
  if (cap.volumeMountGroup === "" || readonly) return;
  await sharedStore(driver).io.run("mountGroup", { path: p, gid: Number(cap.volumeMountGroup) }, describeShare(vol.location)).catch((err: unknown) => {
    if (err instanceof CsiError) throw err; // the share did not answer (UNAVAILABLE): a retry may do it
    throw failedPrecondition(`volume ${vol.volumeId}: cannot give its root to group ${cap.volumeMountGroup}: ${(err as Error).message}`);
  });
}

function sameCap(a: Capability, b: Capability): boolean {
  return a.accessMode === b.accessMode && a.fsType === b.fsType && a.volumeMountGroup === b.volumeMountGroup && a.mountFlags.join(",") === b.mountFlags.join(",");
}

/**
 * NodeGetVolumeStats of a shared volume: statfs of the share through the
 * mount at volumePath, within the deadline. A stale handle, a removed
 * directory or a share that does not answer (healthProblem) is a
 * VolumeCondition, not an error: the kubelet reports it, and the next stage
 * mounts the volume again.
 */
export async function sharedStats(
  driver: Driver,
  vol: SharedNodeVolume,
  volumePath: string,
): Promise<{ usage: VolumeUsage[]; volumeCondition: { abnormal: boolean; message: string } }> {
  const m = volumePath.startsWith("/") ? mountTable().at(volumePath) : undefined;
  if (!m) throw notFound(`volume ${vol.volumeId} is not mounted at ${volumePath}`);
  const id = await identity(driver, vol.location);
  const known = recordedHere(driver, vol.volumeId, m);
  if ("test" in id && !id.test(m) && !known) throw notFound(`volume ${vol.volumeId} is not mounted at ${volumePath}`);
  const problem = await healthProblem(driver, vol.location, volumePath).catch((err: unknown) => {
    if (err instanceof CsiError) return err.message; // no answer: abnormal too
    throw err;
  });
  if (problem) return { usage: [], volumeCondition: { abnormal: true, message: problem } };
  try {
    const fs = await sharedStore(driver).io.run<FsUsage>("statfs", { path: volumePath }, describeShare(vol.location));
    return {
      usage: volumeUsage(fs),
      volumeCondition: { abnormal: false, message: `mounted from ${describeShare(vol.location)}` },
    };
  } catch (err) {
    if (!isUnhealthy(err) && shareErrno(err) === undefined) throw err;
    return { usage: [], volumeCondition: { abnormal: true, message: (err as Error).message } };
  }
}
