/**
 * Memory volumes on the node: bind mounts of the volume's tmpfs.
 *
 * The tmpfs is already mounted, under the root, from CreateVolume on
 * (store.ts). NodeStage binds its root at the staging path; NodePublish
 * binds the staging path into each pod with the pod's per-mount flags.
 * Both give the tmpfs's root to the pod's fsGroup (volume_mount_group), as
 * the other backends do. Every bind of it shows in mountinfo with the tmpfs's own device and
 * root "/" — that is how its mounts are recognised, in any mount
 * namespace. Stats are the tmpfs's own (statfs); growth remounts it with
 * the new size.
 */
import { sameCapability, toCapability, unsupportedReason, type Capability } from "../../csi/capabilities";
import { alreadyExists, failedPrecondition, invalidArgument, notFound, outOfRange } from "../../csi/errors";
import { bindWithFlags, isReadOnly, readOnlyBits } from "../../mount/bind";
import { mountTable, type MountEntry, type Mounts } from "../../mount/mountinfo";
import { MS, parseBindFlags } from "../../mount/options";
import type { Driver } from "../../server/driver";
import type { VolumeRecord } from "../../storage/volume-record";
import { applyVolumeMountGroup } from "../../node/mount-group";
import { anchor, describeMount, withAnchor, withMountTarget } from "../../node/node-path";
import { secondTargetProblem } from "../../node/single-writer";
import type { MountOwner } from "../../node/volume-owner";
import { madeFor } from "../../node/made-here";
import { volumeUsage } from "../../node/volume-usage";
import type { NodeBackend } from "../backend";
import { MEMORY_PROFILE } from "./profile";
import { inWholePages } from "./size";
import { memoryStore } from "./store";

interface MemoryVolume {
  record: VolumeRecord;
  /** The tmpfs's root, under the driver's root. */
  dataDir: string;
  /** Every mount of the tmpfs (its binds at staging and target paths), and the mount table read. */
  mounts: MountEntry[];
  table: Mounts;
}

async function find(driver: Driver, volumeId: string): Promise<MemoryVolume> {
  const store = memoryStore(driver);
  const record = await store.get(volumeId);
  if (!record) throw notFound(`volume ${volumeId} does not exist on this node`);
  const loc = store.location(volumeId);
  if (!loc) throw failedPrecondition(`volume ${volumeId} cannot be used: its tmpfs is not mounted (the driver mounts it again at start-up)`);
  const dataDir = store.dataDir(volumeId);
  const table = mountTable();
  const mounts = table.of(loc).filter((m) => m.mountPoint !== dataDir);
  return { record, dataDir, mounts, table };
}

function ownsOf(vol: MemoryVolume): (m: MountEntry) => boolean {
  const keys = new Set(vol.mounts.map((m) => `${m.device}\0${m.root}`));
  return (m) => keys.has(`${m.device}\0${m.root}`);
}

function checkFor(vol: MemoryVolume, cap: Capability): void {
  const why = unsupportedReason(cap, MEMORY_PROFILE);
  if (why) throw failedPrecondition(`volume ${vol.record.volumeId}: ${why}`);
}

export const memoryNode: NodeBackend = {
  capability(_driver, volumeId, cap) {
    const c = toCapability(cap, "volume_capability");
    const flags = parseBindFlags(c.mountFlags);
    if (typeof flags === "string") throw invalidArgument(flags);
    const why = unsupportedReason(c, MEMORY_PROFILE);
    if (why) throw failedPrecondition(`volume ${volumeId}: ${why}`);
    return c;
  },

  async stage(driver, req) {
    const vol = await find(driver, req.volumeId);
    checkFor(vol, req.cap);
    const owns = ownsOf(vol);
    const current = vol.table.at(req.staging.real);
    if (current && owns(current)) {
      const rec = driver.nodeRecords.get("stage", req.staging.real);
      if (rec && (rec.volumeId !== req.volumeId || !sameCapability(rec.capability, req.cap))) {
        throw alreadyExists(`volume ${req.volumeId} is already staged at ${req.staging.given} with a different volume_capability`);
      }
      await withAnchor(req.staging, (a) => applyVolumeMountGroup(req.cap, a.at, req.readonly));
      return;
    }
    if (current) throw alreadyExists(`something else is already mounted at ${req.staging.given}: ${describeMount(current)}`);
    driver.nodeRecords.put("stage", { volumeId: req.volumeId, path: req.staging.real, capability: req.cap, readonly: req.readonly });
    await withMountTarget(
      req.staging,
      "dir",
      (place) => {
        bindWithFlags(vol.dataDir, place, req.readonly ? MS.RDONLY : 0);
        applyVolumeMountGroup(req.cap, place.at, req.readonly);
      },
      { madeFor: req.volumeId },
    );
  },

  async publish(driver, req) {
    const flags = parseBindFlags(req.cap.mountFlags);
    if (typeof flags === "string") throw invalidArgument(flags);
    const vol = await find(driver, req.volumeId);
    checkFor(vol, req.cap);
    const owns = ownsOf(vol);
    const staged = vol.table.at(req.staging.real);
    if (!staged || !owns(staged)) throw failedPrecondition(`volume ${req.volumeId} is not staged at ${req.staging.given}; call NodeStageVolume first`);
    const kernelReadOnly = req.readonly || req.forcedReadOnly || (flags.bits & MS.RDONLY) !== 0;
    const existing = vol.table.at(req.target.real);
    if (existing && owns(existing)) {
      const rec = driver.nodeRecords.get("publish", req.target.real);
      const same = isReadOnly(existing) === kernelReadOnly && (!rec || (rec.readonly === req.readonly && sameCapability(rec.capability, req.cap)));
      if (!same) throw alreadyExists(`volume ${req.volumeId} is already published at ${req.target.given} with a different capability or readonly flag`);
      await withAnchor(req.target, (a) => applyVolumeMountGroup(req.cap, a.at, kernelReadOnly)); // finish what a crash may have cut short
      return;
    }
    if (existing) throw alreadyExists(`something else is already mounted at ${req.target.given}: ${describeMount(existing)}`);
    const others = vol.mounts.filter((m) => m.mountPoint !== req.staging.real && m.mountPoint !== req.target.real).map((m) => m.mountPoint);
    const problem = secondTargetProblem(driver, vol.record, req.cap, others);
    if (problem) throw failedPrecondition(problem);
    driver.nodeRecords.put("publish", { volumeId: req.volumeId, path: req.target.real, capability: req.cap, readonly: req.readonly });
    const src = anchor(req.staging);
    if (!src) throw failedPrecondition(`${req.staging.given} is gone; stage the volume again`);
    try {
      await withMountTarget(
        req.target,
        "dir",
        (place) => {
          // The pod's fsGroup, as at staging: the kubelet passes it to both, and each pod may have its own.
          applyVolumeMountGroup(req.cap, src.at, kernelReadOnly);
          bindWithFlags(src.at, place, readOnlyBits(kernelReadOnly, flags.bits));
        },
        { madeFor: req.volumeId },
      );
    } finally {
      src.close();
    }
  },

  async owner(driver, volumeId): Promise<MountOwner | undefined> {
    const store = memoryStore(driver);
    // Its mounts are known by its tmpfs alone: a record that is there but cannot be read (a
    // disk error, a hand edit) still names a volume of this driver, whose pods must be able
    // to go. Only a volume with no record at all owns nothing.
    const exists = await store.get(volumeId).then(
      (record) => record !== undefined,
      () => true,
    );
    if (!exists) return undefined;
    const loc = store.location(volumeId);
    return {
      volumeId,
      detach: false,
      placeKind: "dir",
      // A bind of its tmpfs: same device and root — or, once the tmpfs is no longer mounted
      // under the root (someone unmounted it), a tmpfs whose root carries the volume's mark.
      owns: (m) => (loc !== undefined ? m.device === loc.device && m.root === loc.root : m.fsType === "tmpfs" && m.root === "/" && madeFor(m.mountPoint) === volumeId),
    };
  },

  async stats(driver, volumeId, volumePath) {
    const store = memoryStore(driver);
    const record = await store.get(volumeId);
    if (!record) throw notFound(`volume ${volumeId} does not exist on this node`);
    // Its tmpfs gone from under the driver (a node restart, or someone's umount): a condition to report, not an error.
    if (!store.tmpfsMounted(volumeId)) return { usage: [], volumeCondition: { abnormal: true, message: "its tmpfs is missing: not mounted (the driver mounts it again, empty, at start-up)" } };
    const vol = await find(driver, volumeId);
    const m = vol.table.at(volumePath);
    if (!m || !ownsOf(vol)(m)) throw notFound(`volume ${volumeId} is not mounted at ${volumePath}`);
    // The tmpfs's own figures: its size, what is in it, its inodes.
    const usage = volumeUsage(await memoryStore(driver).usage(volumeId));
    return { usage, volumeCondition: { abnormal: false, message: "its tmpfs is mounted" } };
  },

  async expand(driver, req) {
    const store = memoryStore(driver);
    const vol = await find(driver, req.volumeId);
    if (req.cap) {
      const why = unsupportedReason(req.cap, MEMORY_PROFILE);
      if (why) throw invalidArgument(`volume ${req.volumeId}: ${why}`);
    }
    const m = vol.table.at(req.volumePath);
    if (!m || !ownsOf(vol)(m)) throw notFound(`volume ${req.volumeId} is not staged or published at ${req.volumePath}`);
    if (req.range.limit > 0 && req.range.limit < vol.record.capacityBytes) throw outOfRange(`volume ${req.volumeId} has ${vol.record.capacityBytes} bytes and volumes cannot shrink`);
    let record = vol.record;
    // A controller running apart from the nodes answered the resizer from the request: the
    // volume grows here, if this node can promise the RAM (the check the controller could not make).
    if (req.range.required > record.capacityBytes) record = await store.grow(record, inWholePages(req.range.required, req.range));
    else await store.resize(req.volumeId, record.capacityBytes);
    return record.capacityBytes;
  },
};
