/**
 * hostPath volumes on the node: stage, publish, stats, growth.
 *
 * A hostPath volume is on this node's disk, under the root: a directory,
 * or an image file (layouts/). NodeStage puts it at the staging path once
 * — a bind of the directory, the image's file system loop-mounted, a block
 * volume's loop device bound onto <staging>/block — and NodePublish binds
 * that into each pod, with the pod's per-mount flags. Whether a path holds
 * the volume is asked of the kernel on every call (mountinfo, and loop
 * devices by their backing file's identity), never remembered, so a driver
 * restarted in another mount namespace still recognises its mounts.
 */
import * as path from "node:path";
import { sameCapability, type Capability } from "../../csi/capabilities";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "../../csi/errors";
import type { NodeGetVolumeStatsResponse } from "../../gen/csi";
import { isReadOnly, readOnlyBits } from "../../mount/bind";
import { LOOP_MAJOR, loopBacks, loopNumberOfDevice } from "../../mount/loop";
import { fileNumbers, mountRootAt, sameFile, type FileNumbers, type MountRootAnswer } from "../../mount/mount-root";
import type { MountEntry, Mounts } from "../../mount/mountinfo";
import { MS, parseBindFlags, type BindFlags } from "../../mount/options";
import { imageMountTest, isStaleDeviceBind, volumeMountAt, type ImageMountTest } from "../../mount/volume-mounts";
import type { Driver } from "../../server/driver";
import { applyMutableParameters } from "./mutable";
import { applyVolumeMountGroup } from "../../node/mount-group";
import { placeholderName } from "../../node/made-here";
import { anchor, childPath, describeMount, withAnchor, withMountTarget, type NodePath } from "../../node/node-path";
import { mayRefuseSecondTarget, secondTargetProblem } from "../../node/single-writer";
import { unmountOwned, type MountOwner } from "../../node/volume-owner";
import type { NodeBackend, PublishRequest, StageRequest } from "../backend";
import { expandHostPathVolume } from "./node-expand";
import { nodeLayout } from "./layouts";
import { STAGED_DEVICE } from "./layouts/block";
import { findVolume, nodeCapability, nodeVolume, requireDeliverable, volumeOnDisk, type NodeVolume, type VolumeOnDisk } from "./node-volume";
import type { VolumeLayout, VolumeRecord } from "../../storage/volume-record";
import { hostPathStore } from "./store";
import { withVolumeDir } from "./volume-dir";
import { loopNotesOf } from "./loop-notes";
import { directoryAt } from "../../storage/dir-identity";

export const hostPathNode: NodeBackend = {
  capability: (driver, volumeId, cap) => nodeCapability(driver, volumeId, cap).cap,

  async stage(driver, req: StageRequest) {
    const { volumeId, staging, cap, readonly } = req;
    const vol = await findVolume(driver, volumeId);
    requireDeliverable(driver, vol, cap);
    const layout = nodeLayout(vol.layout);
    const staged = layout.stagedChild ? childPath(staging, layout.stagedChild) : staging;
    const fileSystem = vol.layout !== "block";
    // Usually nothing is mounted at the staging path yet, and statx says so
    // without the mount table (volumeAt); a block volume's device file under
    // it is for the table to find.
    const here = staged === staging ? await volumeAt(vol, staging) : "ask-the-table";
    if (here === "volume" || (here === "ask-the-table" && volumeMountAt(vol.mounts, staged.real))) {
      const rec = driver.nodeRecords.get("stage", staging.real);
      if (rec && (rec.volumeId !== volumeId || !sameCapability(rec.capability, cap))) {
        throw alreadyExists(`volume ${volumeId} is already staged at ${staging.given} with a different volume_capability`);
      }
      if (fileSystem) await withAnchor(staging, (a) => applyVolumeMountGroup(cap, a.at, readonly)); // finish what a crash may have cut short
      return;
    }
    // A block volume staged here lives on the file under it; nothing may hide it.
    for (const p of here === "nothing" ? [] : staged === staging ? [staging] : [staging, staged]) {
      const { table } = vol.mounts;
      const m = table.at(p.real);
      if (m && isStaleDeviceBind(table, m) && vol.layout === "block") await unmountOwned(p, owner(volumeId, vol));
      else if (m) throw alreadyExists(`something else is already mounted at ${p.given}: ${describeMount(m)}`);
    }
    // The staging directory (the CO's to make, made here if it has not), and
    // for a block volume the device file inside it, which only the driver puts there
    // (or its placeholder, which a stage killed while making it left).
    const driversOwn = [STAGED_DEVICE, placeholderName(STAGED_DEVICE)];
    if (staged !== staging) await withMountTarget(staging, "dir", () => undefined, { madeFor: volumeId, allow: (names) => names.every((n) => driversOwn.includes(n)) });
    // Write the record first: if we crash between the two steps, a record
    // without a mount is ignored, while a mount without a record would
    // lose the capability it was made for.
    driver.nodeRecords.put("stage", { volumeId, path: staging.real, capability: cap, readonly });
    await withMountTarget(
      staged,
      layout.placeKind,
      async (place) => {
        await layout.stage(driver, vol, place, readonly);
        // An image's root lives inside it: its mutable mode is applied where it is mounted.
        if (vol.layout === "image" && !readonly) applyMutableParameters(driver, vol.record, vol.record.mutableParameters);
        if (fileSystem) applyVolumeMountGroup(cap, place.at, readonly);
      },
      { madeFor: volumeId },
    );
  },

  async publish(driver, req: PublishRequest) {
    const flags = bindFlags(req.cap);
    const vol = await findVolume(driver, req.volumeId);
    requireDeliverable(driver, vol, req.cap);
    const layout = nodeLayout(vol.layout);
    const staged = layout.stagedChild ? childPath(req.staging, layout.stagedChild) : req.staging;
    const atStaging = await volumeAt(vol, staged);
    if (atStaging === "nothing" || (atStaging === "ask-the-table" && !volumeMountAt(vol.mounts, staged.real))) {
      throw failedPrecondition(`volume ${req.volumeId} is not staged at ${req.staging.given}; call NodeStageVolume first`);
    }
    await publishAt(driver, { volumeId: req.volumeId, vol, source: { staged }, target: req.target, cap: req.cap, flags, readonly: req.readonly, forcedReadOnly: req.forcedReadOnly });
  },

  async owner(driver, volumeId) {
    const store = hostPathStore(driver);
    let record: VolumeRecord | undefined;
    try {
      record = await store.get(volumeId);
    } catch {
      return damagedOwner(driver, volumeId);
    }
    if (!record) return undefined;
    return owner(volumeId, nodeVolume(record, store.dataDir(volumeId)));
  },

  async stats(driver, volumeId, volumePath): Promise<NodeGetVolumeStatsResponse> {
    const store = hostPathStore(driver);
    const record = await store.get(volumeId);
    if (!record) throw notFound(`volume ${volumeId} does not exist on this node`);
    const volumeCondition = await store.condition(volumeId, record);
    if (volumeCondition.abnormal && !volumeCondition.usable) return { usage: [], volumeCondition };
    const vol = nodeVolume(record, store.dataDir(volumeId));
    if (!mountedHere(vol, volumePath)) {
      // A block volume's device detached behind our back (losetup -d: a bind of its node does not
      // hold it) leaves the pod a dead device file: that is the volume gone bad, not a wrong path.
      if (lostDevice(driver, vol, volumePath)) {
        return { usage: [], volumeCondition: { abnormal: true, message: `the loop device of volume ${volumeId} at ${volumePath} has been detached; stage and publish it again` } };
      }
      throw notFound(`volume ${volumeId} is not mounted at ${volumePath}`);
    }
    const usage = await nodeLayout(vol.layout).stats(driver, vol, volumePath);
    return { usage, volumeCondition };
  },

  expand: expandHostPathVolume,
};

/**
 * What is at a staging or target path, as far as statx can tell without the
 * mount table (through the anchored parent): the volume's own mount,
 * nothing mounted, or something only the table can name. A block volume
 * always asks the table (see recogniser).
 */
async function volumeAt(vol: VolumeOnDisk, np: NodePath): Promise<Seen> {
  const recognises = recogniser(vol);
  return recognises ? judge(recognises, await withAnchor(np, (a) => mountRootAt(a.at))) : "ask-the-table";
}

type Seen = "volume" | "nothing" | "ask-the-table";

/** What statx's answer at a place says of the volume (undefined: the place's parent is gone). */
function judge(recognises: (root: FileNumbers) => boolean, top: MountRootAnswer | undefined): Seen {
  if (top === undefined || top.kind === "absent" || top.kind === "not-a-mount") return "nothing";
  return top.kind === "mount" && recognises(top.root) ? "volume" : "ask-the-table";
}

/**
 * Is the mount on top at `path` the volume's? statx, where it can tell
 * (recogniser below); otherwise the mount table. (`path` is resolved and
 * checked to lie in the kubelet directory; nothing is done there but look.)
 */
function mountedHere(vol: VolumeOnDisk, path: string): boolean {
  const recognises = recogniser(vol);
  const seen = recognises ? judge(recognises, mountRootAt(path)) : "ask-the-table";
  return seen === "ask-the-table" ? volumeMountAt(vol.mounts, path) !== undefined : seen === "volume";
}

/**
 * Is `path` where this block volume was published, its device since detached? The bind
 * left there shows only a loop device that no longer has a backing file; the node's
 * publish record says whose it was. The kubelet asks for a block volume's stats at a
 * bind of its own (volumeDevices/<pv>/dev/<pod uid>, of the device it was given at a
 * target), which no record names: that one is the volume's when a target published for
 * it shows the same dead device.
 */
function lostDevice(driver: Driver, vol: NodeVolume, path: string): boolean {
  if (vol.layout !== "block") return false;
  const { table } = vol.mounts;
  const m = table.at(path);
  if (!m || !isStaleDeviceBind(table, m)) return false;
  const volumeId = vol.record.volumeId;
  if (driver.nodeRecords.get("publish", path)?.volumeId === volumeId) return true;
  for (const rec of driver.nodeRecords.publishedTargets(volumeId)) {
    const t = table.at(rec.path);
    if (t && t.device === m.device && t.root === m.root) return true;
  }
  return false;
}

export function bindFlags(cap: Capability): BindFlags {
  const flags = parseBindFlags(cap.mountFlags);
  if (typeof flags === "string") throw invalidArgument(flags);
  return flags;
}

/**
 * What of the volume may be unmounted: its own mounts by device and root
 * (or loop devices backed by its image), and for a block volume a bind of a
 * loop device that has since been detached (it refers to nothing). The
 * mount table is read only if statx cannot settle it (`recognises`).
 */
function owner(volumeId: string, vol: VolumeOnDisk): MountOwner {
  const key = (m: { device: string; root: string }) => `${m.device}\0${m.root}`;
  let own: Set<string> | undefined;
  // An image's mount is judged alone: listing every mount of the image would ask every
  // loop device bound on the node (mountsOfImage), to judge the one at this place.
  let image: ImageMountTest | undefined;
  // A dir volume's mounts in the table are those of the directory its record names, wherever it is (volume-dir.ts: mountsOfDirOfRecord).
  const isOwn = (m: MountEntry, table: Mounts) =>
    vol.layout === "dir"
      ? (own ??= new Set(vol.mounts.mounts.map(key))).has(key(m))
      : (image ??= imageMountTest(vol.image, table)).shows(m);
  return {
    volumeId,
    detach: false,
    owns: (m, table) => isOwn(m, table) || (vol.layout === "block" && isStaleDeviceBind(table, m)),
    recognises: recogniser(vol),
    image: vol.layout === "block" ? vol.image : undefined,
    ...(vol.layout === "block" ? { loopNotes: loopNotesOf(vol.dataDir) } : {}),
    placeKind: vol.layout === "block" ? "file" : "dir",
    ...(vol.layout === "block" ? { stagedChild: STAGED_DEVICE } : {}),
  };
}

/**
 * The mounts of a volume whose record cannot be read (a disk error, a hand edit: the
 * driver's own writes never leave one), found from its data alone, so that its pods can
 * still go. A directory is a dir volume's. A file is an image's or a block volume's, and
 * only the record said which: the owner takes the mounts of either — file systems on a
 * loop device backed by the file, binds of such a device's node (the last of which takes
 * the device with it), and a block volume's device file under the staging path — and, at a
 * target, removes the empty directory or file the driver made there for this volume.
 * Every test of ownership is the same as for a readable record of that layout.
 */
function damagedOwner(driver: Driver, volumeId: string): MountOwner {
  const store = hostPathStore(driver);
  // No record, so no identity: the file at the name, as for an old record.
  const as = (layout: VolumeLayout) => owner(volumeId, volumeOnDisk(layout, store.dataDir(volumeId)));
  if (store.dataKind(volumeId) !== "file") return as("dir");
  // Both layouts find their mounts through the loop devices backed by the file (a block
  // volume's also counts a leftover bind of a detached device): the block owner's test
  // covers an image's, and an image's file system is also recognised by statx.
  return { ...as("block"), recognises: as("image").recognises, placeKind: "either" };
}

/**
 * How statx alone shows a mount is the volume's (src/mount/mount-root.ts):
 * a bind of its directory has the directory's own device and inode; its
 * image's file system is on a loop device whose backing file is the image
 * its record names, wherever it is (NodeVolume.image: volume-dir.ts,
 * imageOfRecord), not whatever file is at data/<id>. A block volume's binds are left to the mount table, which also tells
 * whether a bind is its loop device's last (volume-owner.ts).
 *
 * A dir volume whose record names its directory (volume-dir.ts) is known by
 * that identity, not by what is at data/<id> now: the mount's root is the
 * volume's directory when it has the recorded inode and birth time, on the
 * root's device (a btrfs subvolume has one of its own). So another
 * directory put at the name is never taken for the volume's, and the
 * volume's own mounts are still recognised — and can be undone — while its
 * directory is elsewhere. Without a birth time on both sides, the name is
 * used, and only while it holds the volume's directory.
 */
function recogniser(vol: VolumeOnDisk): ((root: FileNumbers) => boolean) | undefined {
  if (vol.layout === "dir") {
    const proof = vol.dataIdentity;
    let data: FileNumbers | null | undefined;
    const byName = (root: FileNumbers) => {
      data ??= (dirHoldsVolume(vol) ? fileNumbers(vol.dataDir) : undefined) ?? null;
      return data !== null && data.kind === "dir" && sameFile(root, data);
    };
    if (!proof?.born) return byName;
    const born = BigInt(proof.born);
    return (root) => {
      if (root.born === undefined) return byName(root);
      if (root.kind !== "dir" || String(root.ino) !== proof.ino || root.born !== born) return false;
      const dev = vol.ownDevice ? undefined : deviceOfData(vol.dataDir);
      return dev === undefined || (dev.major === root.dev.major && dev.minor === root.dev.minor);
    };
  }
  if (vol.layout === "image") {
    return (root) => {
      const n = root.dev.major === LOOP_MAJOR ? loopNumberOfDevice(`${LOOP_MAJOR}:${root.dev.minor}`) : undefined;
      if (n === undefined) return false;
      const image = vol.image;
      return image !== undefined && loopBacks(n, image);
    };
  }
  return undefined;
}

/** Is data/<id> the volume's own directory (or, for an old record that names none, anything at all)? One look by name. */
function dirHoldsVolume(vol: VolumeOnDisk): boolean {
  return vol.dataIdentity === undefined || directoryAt(vol.dataDir, vol.dataIdentity) === "same";
}

/** The device of the file system holding data/ (every dir volume's but a btrfs subvolume's), asked once per root. */
const dataDevices = new Map<string, FileNumbers["dev"] | undefined>();
function deviceOfData(dataDir: string): FileNumbers["dev"] | undefined {
  const data = path.dirname(dataDir);
  if (!dataDevices.has(data)) dataDevices.set(data, fileNumbers(data)?.dev);
  return dataDevices.get(data);
}

export interface Publish {
  /** The volume ID as the request named it (an inline volume's is the kubelet's, not the store's). */
  volumeId: string;
  vol: NodeVolume;
  /** What is bound at the target: the staged place, or an inline volume's directory (the driver's own path). */
  source: { staged: NodePath } | { path: string };
  target: NodePath;
  cap: Capability;
  flags: BindFlags;
  readonly: boolean;
  /** A read-only attachment: the mount is read-only whatever was asked. */
  forcedReadOnly: boolean;
}

/**
 * Put the volume at the target. Repeating the call with the same
 * arguments is a no-op; different arguments on the same target are
 * ALREADY_EXISTS; access modes that allow one workload refuse a second
 * target with FAILED_PRECONDITION (single-writer.ts).
 */
export async function publishAt(driver: Driver, p: Publish): Promise<void> {
  const { vol, target, cap, readonly } = p;
  const volumeId = vol.record.volumeId;
  const layout = nodeLayout(vol.layout);
  const kernelReadOnly = readonly || p.forcedReadOnly || (p.flags.bits & MS.RDONLY) !== 0;
  const fileSystem = vol.layout !== "block";
  const sourcePath = "staged" in p.source ? p.source.staged.real : p.source.path;

  // The usual publish: nothing at the target yet (statx, src/mount/mount-root.ts), and
  // an access mode no other target can make a refusal. Then no mount table is read.
  const quick = (await volumeAt(vol, target)) === "nothing" && !mayRefuseSecondTarget(driver, vol.record, cap, target.real);
  if (!quick) {
    const { table, mounts } = vol.mounts;
    const existing = volumeMountAt(vol.mounts, target.real);
    if (existing) {
      const rec = driver.nodeRecords.get("publish", target.real);
      const same = isReadOnly(existing) === kernelReadOnly && (!rec || (rec.readonly === readonly && sameCapability(rec.capability, cap)));
      if (!same) throw alreadyExists(`volume ${volumeId} is already published at ${target.given} with a different capability or readonly flag`);
      if (fileSystem) await withAnchor(target, (a) => applyVolumeMountGroup(cap, a.at, kernelReadOnly)); // finish what a crash may have cut short
      return;
    }
    const occupant = table.at(target.real);
    if (occupant && vol.layout === "block" && isStaleDeviceBind(table, occupant)) await unmountOwned(target, owner(p.volumeId, vol));
    else if (occupant) throw alreadyExists(`something else is already mounted at ${target.given}: ${describeMount(occupant)}`);

    const others = mounts.filter((m) => m.mountPoint !== sourcePath && m.mountPoint !== target.real).map((m) => m.mountPoint);
    const problem = secondTargetProblem(driver, vol.record, cap, others);
    if (problem) throw failedPrecondition(problem);
  }

  driver.nodeRecords.put("publish", { volumeId, path: target.real, capability: cap, readonly });
  // The source is reached the same way as the target: through its open parent, never by a path a symlink could redirect.
  const src = "staged" in p.source ? anchor(p.source.staged) : undefined;
  if ("staged" in p.source && !src) throw failedPrecondition(`${p.source.staged.given} is gone; stage the volume again`);
  try {
    await withMountTarget(
      target,
      layout.placeKind,
      async (place) => {
        const put = async (from: string) => {
          if (fileSystem) applyVolumeMountGroup(cap, from, kernelReadOnly);
          await layout.publish(vol, from, place, readOnlyBits(kernelReadOnly, p.flags.bits), kernelReadOnly);
        };
        // An inline volume's directory is bound straight from a descriptor proven to be its own (volume-dir.ts).
        if (src) await put(src.at);
        else await withVolumeDir(sourcePath, vol.record, put);
      },
      { madeFor: p.volumeId },
    );
  } finally {
    src?.close();
  }
}
