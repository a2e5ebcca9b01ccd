/**
 * The hostPath backend: volumes on this node's own disk.
 *
 * A volume is a directory under the root (with or without a quota), or an
 * image file with a file system of its own, or an image handed to a pod as
 * a raw block device (placement.ts decides, from the StorageClass's
 * `capacity` parameter and the capabilities). It can be used on this node
 * only (topology), by one node's pods at a time. Its size is a promise the
 * node must be able to keep: new and grown volumes are checked against
 * what the node can still promise (the capacity ledger).
 *
 * The record under <root>/volumes is the truth (store.ts); IDs are
 * `hp-` + 32 hex digits of a hash of the name. A controller that runs
 * apart from the nodes (--mode controller) holds no hostPath volume: it
 * answers expansion with the size the node will give (whole MiB) and
 * leaves the growth to the node (grow.ts), and refuses changes it cannot
 * make from there.
 */
import { requireSupported, unsupportedReason, type Capability } from "../../csi/capabilities";
import { CsiError, failedPrecondition, invalidArgument, notFound, outOfRange, resourceExhausted } from "../../csi/errors";
import type { Topology } from "../../gen/csi";
import { releaseIdleLoops } from "../../mount/idle-loops";
import { isReadOnlyLoop } from "../../mount/loop";
import type { Driver, DriverConfig } from "../../server/driver";
import type { Logger } from "../../server/logger";
import { layoutOf, withMutableParameters, type VolumeLayout, type VolumeRecord } from "../../storage/volume-record";
import type { Content } from "../../storage/copy-content";
import { identityAt, type DirIdentityParts } from "../../storage/dir-identity";
import { chooseSize, type Range } from "../../controller/capacity";
import { sizeWithSource } from "../../controller/content-source";
import { unfitProblem } from "../../controller/mutable-parameters";
import { applyMutableParameters } from "./mutable";
import { matchesThisNode, topologyProblem } from "../../controller/topology";
import { requestedFields } from "../new-record";
import type { Backend, BackendFactory, NewVolumeRequest, VolumeSource } from "../backend";
import { hostPathEphemeral } from "./ephemeral";
import { isEphemeralRecord } from "./ephemeral-names";
import { growHostPathVolume, sizeOnTheNode } from "./grow";
import { releaseLeakedLoops } from "./leaked-loops";
import { hostPathNode } from "./node";
import { volumeOnDisk } from "./node-volume";
import { CAPACITY_MODES, defaultSize, holdSpace, isEnforced, place, placeFromSource, promisable, sizeFor, type Placement } from "./placement";
import { HostPathStore } from "./store";
import { dataKindOf, imageOfRecord, notTheVolumes, withVolumeDir, withVolumeImage } from "./volume-dir";
import { loopNotesOf } from "./loop-notes";

export class HostPathBackend implements Backend {
  readonly name = "hostpath";
  readonly summary = "a directory or an image file on the node's own disk, used from that node only";
  readonly heldElsewhere = false;
  readonly groupSnapshots = true;
  readonly parameterRules = {
    // How the volume's size is enforced (placement.ts, docs/capacity.md).
    capacity: (v: string) =>
      (CAPACITY_MODES as readonly string[]).includes(v) ? undefined : `capacity ${JSON.stringify(v)} is not a mode (modes: ${CAPACITY_MODES.join(", ")})`,
  };
  readonly node = hostPathNode;
  readonly ephemeral = hostPathEphemeral;

  constructor(readonly store: HostPathStore) {}

  checkParameters(): void {}

  ownsId(volumeId: string): boolean {
    return HostPathStore.isVolumeId(volumeId);
  }

  idFor(name: string): string {
    return HostPathStore.idForName(name);
  }

  get anyProfile() {
    return this.store.anyLayoutProfile;
  }

  get(volumeId: string) {
    return this.store.get(volumeId);
  }

  get count(): number {
    return this.store.count;
  }

  page(after: string, limit: number) {
    return this.store.page(after, limit);
  }

  listed(record: VolumeRecord): boolean {
    return !isEphemeralRecord(record); // an inline volume is its pod's, not the CO's
  }

  profile(record: VolumeRecord) {
    return this.store.profileOf(record);
  }

  condition(record: VolumeRecord) {
    return this.store.condition(record.volumeId, record);
  }

  context(): Record<string, string> {
    return {};
  }

  topology(_driver: Driver, record: VolumeRecord): Record<string, string>[] {
    return [{ ...record.topology }];
  }

  async create(driver: Driver, req: NewVolumeRequest): Promise<VolumeRecord> {
    const store = this.store;
    const where = topologyProblem(req.accessibility, driver);
    if (where) throw resourceExhausted(where);
    const source = req.source;
    const placement = source ? placeFromSource(source, req.parameters, req.caps, driver) : place(req.parameters, req.caps, driver);
    requireSupported(req.caps, store.profileFor(placement.layout, placement.fsType));
    const unfit = unfitProblem(placement.layout, req.mutableParameters);
    if (unfit) throw invalidArgument(unfit);
    const fsTotal = (await store.usage()).totalBytes;
    const defaultBytes = defaultSize(driver, placement, fsTotal);
    const wanted = source ? sizeWithSource(req.range, defaultBytes, source.minBytes) : chooseSize(req.range, defaultBytes);
    const size = sizeFor(placement, wanted, req.range);
    if (size > fsTotal) throw outOfRange(`a volume of ${size} bytes cannot fit on this node's file system (${fsTotal} bytes in all)`);
    const release = isEnforced(placement) ? await holdSpace(driver, size, `a volume of ${size} bytes`) : () => {};
    let record: VolumeRecord;
    try {
      ({ record } = await store.create({ ...requestedFields(driver, req, size), ...placement }, source?.fill));
    } finally {
      release();
    }
    // (A crash between the commit and this step is repaired by the retry: converge.)
    applyMutableParameters(driver, record, record.mutableParameters);
    return record;
  }

  async converge(driver: Driver, record: VolumeRecord): Promise<void> {
    applyMutableParameters(driver, record, record.mutableParameters);
  }

  async holdsName(name: string): Promise<boolean> {
    return (await this.store.get(HostPathStore.idForName(name))) !== undefined;
  }

  async delete(driver: Driver, volumeId: string): Promise<string> {
    let record: VolumeRecord | undefined;
    let unreadable: string | undefined;
    try {
      record = await this.store.get(volumeId);
    } catch (err) {
      // A record damaged behind the driver's back (a disk error, a hand edit) must not keep the
      // volume for ever: deleting needs only what is on disk, and the data's own kind (a
      // directory, or an image file) says which mounts would show it in use.
      unreadable = CsiError.from(err).message;
    }
    // Without a record there is no volume: whatever is at its name is not the driver's to look at or remove.
    if (!record && unreadable === undefined) return "nothing: it does not exist";
    // The volume's directory or image file is the one its record names, or the call touches nothing (volume-dir.ts);
    // checked first, so that another's mounts are not taken for the volume's either.
    const kind = record ? dataKindOf(layoutOf(record)) : this.store.dataKind(volumeId) === "file" ? "file" : "dir";
    const proof = record?.dataIdentity;
    const dir = this.store.dataDir(volumeId);
    if (proof && identityAt(dir, proof, kind) === "other") throw notTheVolumes(volumeId, dir, undefined, kind);
    const mounts = this.mountsOf(volumeId, kind === "file" ? "image" : "dir", proof);
    if (mounts.length > 0) throw failedPrecondition(`volume ${volumeId} is still mounted at ${mounts.join(", ")}; unpublish and unstage it first`);
    // A block volume's device a crash left attached and bound nowhere (src/mount/idle-loops.ts) would hold the removed image for ever.
    // Then its notes go (loop-notes.ts): no device of it is bound, and those idle are detaching.
    if (kind === "file") {
      const notes = loopNotesOf(dir);
      const image = volumeOnDisk("block", dir, proof).image;
      if (image) releaseIdleLoops(image, notes);
      notes.clear();
    }
    // (A file system mounted inside the volume is not the volume's to empty: the store's delete refuses it before its commit point.)
    if (unreadable !== undefined) driver.log.warn("deleting a volume whose record cannot be read, from what is on disk", { volumeId, problem: unreadable });
    return (await this.store.delete(volumeId, kind, proof)) ? "deleted" : "nothing: it does not exist";
  }

  async mountedHere(_driver: Driver, volumeId: string, record?: VolumeRecord): Promise<string[]> {
    const rec = record ?? (await this.store.get(volumeId));
    return this.mountsOf(volumeId, rec ? layoutOf(rec) : "dir", rec?.dataIdentity);
  }

  /**
   * Where the volume's data is mounted on this node: binds of its directory, or the mounts of its
   * image's loop devices — of the directory or image its record names (`proof`), wherever it is, not
   * of what is put at data/<id> (node-volume.ts: volumeOnDisk); without one (an old or unreadable
   * record), by name.
   */
  private mountsOf(volumeId: string, layout: VolumeLayout, proof: DirIdentityParts | undefined): string[] {
    return volumeOnDisk(layout, this.store.dataDir(volumeId), proof).mounts.mounts.map((m) => m.mountPoint);
  }

  async expand(driver: Driver, volumeId: string, record: VolumeRecord | undefined, range: Range) {
    if (!record) {
      // A node plugin made it and holds it; a controller apart from the nodes answers with the size
      // it will have, and NodeExpandVolume grows it on its node (grow.ts).
      if (driver.config.mode === "controller") return { capacityBytes: sizeOnTheNode(range), nodeExpansionRequired: true };
      throw notFound(`volume ${volumeId} does not exist`);
    }
    const nodeExpansionRequired = layoutOf(record) !== "dir";
    if (range.required <= record.capacityBytes) return { capacityBytes: record.capacityBytes, nodeExpansionRequired };
    const condition = await this.condition(record);
    if (condition.abnormal) throw failedPrecondition(`volume ${volumeId} cannot be expanded: ${condition.message}`);
    const grown = await growHostPathVolume(driver, record, range);
    return { capacityBytes: grown.capacityBytes, nodeExpansionRequired };
  }

  async modify(driver: Driver, volumeId: string, record: VolumeRecord | undefined, params: Record<string, string>): Promise<void> {
    if (!record) {
      if (driver.config.mode === "controller") {
        throw invalidArgument(
          `volume ${volumeId} lives on a node's own disk, and this controller (--mode controller) holds no node-local volume: ` +
            "its mutable parameters can only be set when it is created (docs/deploy.md)",
        );
      }
      throw notFound(`volume ${volumeId} does not exist`);
    }
    const unfit = unfitProblem(layoutOf(record), params);
    if (unfit) throw invalidArgument(`volume ${volumeId}: ${unfit}`);
    const condition = await this.condition(record);
    if (condition.abnormal) throw failedPrecondition(`volume ${volumeId} cannot be modified: ${condition.message}`);
    applyMutableParameters(driver, record, params);
    const modified = withMutableParameters(record, params);
    if (modified) await this.store.update(modified);
  }

  async capacity(driver: Driver, params: Record<string, string>, caps: readonly Capability[], topology: Topology | undefined): Promise<number> {
    if (topology !== undefined && !matchesThisNode(topology, driver)) return 0;
    let placement: Placement | undefined;
    try {
      placement = place(params, caps, driver);
    } catch {
      return 0; // e.g. capacity: quota on a root without quotas, or block with capacity: none
    }
    const profile = this.store.profileFor(placement.layout, placement.fsType);
    if (caps.some((c) => unsupportedReason(c, profile) !== undefined)) return 0;
    return promisable(driver);
  }

  source(driver: Driver, record: VolumeRecord): VolumeSource {
    const dataPath = this.store.dataDir(record.volumeId);
    const layout = layoutOf(record);
    // An image's loop devices, to hold it still, are those of the recorded file, as on the node (volume-dir.ts: imageOfRecord).
    const image = layout === "dir" ? {} : { image: () => imageOfRecord(dataPath, record.dataIdentity) };
    const content: Content = { path: dataPath, layout, live: true, ...image };
    const store = this.store;
    return {
      layout: content.layout,
      ...(record.fsType ? { fsType: record.fsType } : {}),
      async read(fn) {
        const condition = await store.condition(record.volumeId);
        if (condition.abnormal) throw failedPrecondition(`volume ${record.volumeId} cannot be copied: ${condition.message}`);
        // Copied from a descriptor proven to be the volume's directory or image file, not from its name (volume-dir.ts):
        // whatever is put at data/<id> meanwhile, the copier reads the volume's own (a file through /proc/<pid>/fd/<n>,
        // as a restore reads a snapshot's: snapshot-content.ts).
        if (content.layout === "dir") return withVolumeDir(content.path, record, (at) => fn({ ...content, path: at }));
        return withVolumeImage(content.path, record, true, (fd) => fn({ ...content, path: `/proc/${process.pid}/fd/${fd}`, pinned: true, origin: content.path }));
      },
      groupProblem: () => groupProblem(driver, store, record),
    };
  }
}

/**
 * A member of a group snapshot that is in use and cannot be frozen: a
 * directory or a raw block device mounted anywhere but in the driver's own
 * copy views (a pod may be writing it). Image volumes in use are frozen.
 */
function groupProblem(driver: Driver, store: HostPathStore, volume: VolumeRecord): string | undefined {
  const layout = layoutOf(volume);
  if (layout === "image") return undefined;
  const views = driver.snapshots.viewsDir + "/";
  const found = volumeOnDisk(layout, store.dataDir(volume.volumeId), volume.dataIdentity).mounts;
  const writable = layout === "block" ? found.loops.some((n) => !isReadOnlyLoop(n)) : true;
  const mounts = found.mounts.filter((m) => !m.mountPoint.startsWith(views));
  if (mounts.length === 0 || !writable) return undefined;
  const what = layout === "block" ? "a raw block volume (a device cannot be frozen)" : "a directory volume (only the node's whole file system could be frozen)";
  return `volume ${volume.volumeId} is in use (mounted at ${mounts.map((m) => m.mountPoint).join(", ")}) and is ${what}`;
}

export const hostpathBackend: BackendFactory = {
  name: "hostpath",
  async open(config: DriverConfig, log: Logger) {
    const store = await HostPathStore.open(config.root);
    if (config.defaultCapacityMode === "quota" && !store.quota) throw new Error(`--default-capacity-mode quota, but ${store.noQuotaReason}`);
    log.info("capacity", { quotas: store.quota?.description ?? `none (${store.noQuotaReason})`, defaultMode: config.defaultCapacityMode });
    for (const l of store.leftAtStart) log.warn("a leftover of an interrupted call could not be removed: it stays, and the next start tries again", l);
    const foreign = "an entry of the root's data directory that no volume record names was left as it is: the driver removes only what it made";
    for (const l of store.foreignAtStart) log.warn(foreign, l);
    // After the sweep, before any call: devices a crash left holding volumes' images (leaked-loops.ts).
    try {
      for (const l of await releaseLeakedLoops(store)) log.warn("a loop device a crash left attached to a volume's image, used by no mount, was let go", { ...l });
    } catch (err) {
      log.warn("the loop devices a crash left could not all be let go: a volume's next unstage, unpublish or delete tries again", { error: String(err) });
    }
    return new HostPathBackend(store);
  },
};
