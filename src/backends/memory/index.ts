/**
 * The memory backend: a volume is a tmpfs in the node's RAM.
 *
 * What Kubernetes' emptyDir with `medium: Memory` is, as a CSI volume with
 * a claim, a size and a life of its own: a tmpfs mounted with `size=` the
 * requested capacity, in whole pages (size.ts), so the kernel enforces the
 * limit (ENOSPC past it) with no quotas and no image files. It is fast (no disk at all) and
 * costs RAM: a volume's pages count as the node's shared memory for as
 * long as it holds data, and a node must keep room for what its memory
 * volumes were promised (GetCapacity, CreateVolume). Its contents do not
 * survive the node's restart; they do survive the driver's (store.ts).
 *
 * Like hostPath it is node-local (topology); snapshots and clones copy its
 * tree into the driver's root (the snapshot store) and back into a new
 * tmpfs; ControllerExpandVolume and NodeExpandVolume remount it with the
 * new size; `mode` and a pod's fsGroup apply to its root. docs/memory.md.
 */
import { lstatSync } from "node:fs";
import { requireSupported, unsupportedReason, type Capability } from "../../csi/capabilities";
import { failedPrecondition, invalidArgument, notFound, resourceExhausted } from "../../csi/errors";
import type { Topology } from "../../gen/csi";
import { mountsOfDir } from "../../mount/volume-mounts";
import type { Driver, DriverConfig } from "../../server/driver";
import type { Logger } from "../../server/logger";
import { setRootMode } from "../../storage/volume-root";
import { withMutableParameters, type VolumeRecord } from "../../storage/volume-record";
import { chooseSize, type Range } from "../../controller/capacity";
import { describeSource, sizeWithSource } from "../../controller/content-source";
import { unfitProblem } from "../../controller/mutable-parameters";
import { matchesThisNode, topologyProblem } from "../../controller/topology";
import type { Backend, BackendFactory, NewVolumeRequest, VolumeSource } from "../backend";
import { requestedFields } from "../new-record";
import { memoryNode } from "./node";
import { MEMORY_PROFILE } from "./profile";
import { inWholePages } from "./size";
import { MemoryStore } from "./store";

export class MemoryBackend implements Backend {
  readonly name = "memory";
  readonly summary = "a tmpfs in the node's memory, its size enforced by the kernel, used from that node only; gone when the node restarts";
  readonly heldElsewhere = false;
  readonly groupSnapshots = false;
  readonly parameterRules = {};
  readonly anyProfile = MEMORY_PROFILE;
  readonly node = memoryNode;

  constructor(readonly store: MemoryStore) {}

  checkParameters(): void {}

  ownsId(volumeId: string): boolean {
    return MemoryStore.isVolumeId(volumeId);
  }

  idFor(name: string): string {
    return MemoryStore.idForName(name);
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

  listed(): boolean {
    return true;
  }

  profile() {
    return MEMORY_PROFILE;
  }

  async condition(record: VolumeRecord) {
    if (this.store.tmpfsMounted(record.volumeId)) return { abnormal: false, message: "its tmpfs is mounted" };
    const other = this.store.foreign(record.volumeId);
    if (other) return { abnormal: true, message: `its tmpfs is not mounted: ${other.fsType} from ${other.source}, which is not the volume's, is mounted in its place` };
    if (lstatSync(this.store.dataDir(record.volumeId), { throwIfNoEntry: false })?.isSymbolicLink()) {
      return { abnormal: true, message: "the volume's mount point has been replaced by a symlink" };
    }
    return { abnormal: true, message: "its tmpfs is missing: not mounted (the driver mounts it again, empty, at start-up)" };
  }

  context(): Record<string, string> {
    return {};
  }

  topology(_driver: Driver, record: VolumeRecord): Record<string, string>[] {
    return [{ ...record.topology }];
  }

  async create(driver: Driver, req: NewVolumeRequest): Promise<VolumeRecord> {
    const where = topologyProblem(req.accessibility, driver);
    if (where) throw resourceExhausted(where);
    requireSupported(req.caps, MEMORY_PROFILE);
    const unfit = unfitProblem("dir", req.mutableParameters);
    if (unfit) throw invalidArgument(unfit);
    const source = req.source;
    if (source && source.layout !== "dir") {
      throw invalidArgument(`the content source ${describeSource(source.contentSource)} is a ${source.layout} volume; only a directory tree can be copied into a memory volume`);
    }
    const wanted = source ? sizeWithSource(req.range, driver.config.defaultCapacityBytes, source.minBytes) : chooseSize(req.range, driver.config.defaultCapacityBytes);
    const size = inWholePages(wanted, req.range, Math.max(req.range.required, source?.minBytes ?? 0));
    const release = await this.store.hold(size, (free) => `a memory volume of ${size} bytes needs that much RAM, but this node can promise only ${free} more (available memory less what memory volumes may still fill)`);
    try {
      return await this.store.create(requestedFields(driver, req, size), source?.fill);
    } finally {
      release();
    }
  }

  async converge(_driver: Driver, record: VolumeRecord): Promise<void> {
    if (record.mutableParameters.mode !== undefined && this.store.tmpfsMounted(record.volumeId)) {
      setRootMode(this.store.dataDir(record.volumeId), parseInt(record.mutableParameters.mode, 8));
    }
  }

  async holdsName(name: string): Promise<boolean> {
    return (await this.store.get(MemoryStore.idForName(name))) !== undefined;
  }

  async delete(driver: Driver, volumeId: string): Promise<string> {
    const mounts = await this.mountedHere(driver, volumeId);
    if (mounts.length > 0) throw failedPrecondition(`volume ${volumeId} is still mounted at ${mounts.join(", ")}; unpublish and unstage it first`);
    return (await this.store.delete(volumeId)) ? "deleted (its memory is freed)" : "nothing: it does not exist";
  }

  async mountedHere(_driver: Driver, volumeId: string): Promise<string[]> {
    if (!MemoryStore.isVolumeId(volumeId)) return [];
    // Its uses: every mount of the tmpfs but its own home under the root, which a restarted
    // driver may see through more than one path (a container's view of the root, and the host's).
    const home = `/memory/data/${volumeId}`;
    return mountsOfDir(this.store.dataDir(volumeId))
      .mounts.map((m) => m.mountPoint)
      .filter((p) => !p.endsWith(home));
  }

  async expand(driver: Driver, volumeId: string, record: VolumeRecord | undefined, range: Range) {
    if (!record) {
      // Made and held by a node plugin: a controller apart from the nodes leaves it to NodeExpandVolume.
      // Its answer is the size the node will give it: the same whole pages.
      if (driver.config.mode === "controller") {
        return { capacityBytes: inWholePages(range.required || range.limit, range), nodeExpansionRequired: true };
      }
      throw notFound(`volume ${volumeId} does not exist`);
    }
    if (range.required <= record.capacityBytes) return { capacityBytes: record.capacityBytes, nodeExpansionRequired: false };
    const size = inWholePages(range.required, range);
    // A remount of a tmpfs that is not there fails with the system call's error (EINVAL, ENOENT), as if the volume were broken or gone.
    const condition = await this.condition(record);
    if (condition.abnormal) throw failedPrecondition(`volume ${volumeId} cannot be expanded: ${condition.message}`);
    const grown = await this.store.grow(record, size);
    return { capacityBytes: grown.capacityBytes, nodeExpansionRequired: false };
  }

  async modify(driver: Driver, volumeId: string, record: VolumeRecord | undefined, params: Record<string, string>): Promise<void> {
    if (!record) {
      if (driver.config.mode === "controller") throw invalidArgument(`volume ${volumeId} lives in a node's memory, and this controller (--mode controller) holds none: its mutable parameters can only be set when it is created`);
      throw notFound(`volume ${volumeId} does not exist`);
    }
    const unfit = unfitProblem("dir", params);
    if (unfit) throw invalidArgument(`volume ${volumeId}: ${unfit}`);
    if (!this.store.tmpfsMounted(volumeId)) throw failedPrecondition(`volume ${volumeId} cannot be modified: its tmpfs is not mounted`);
    if (params.mode !== undefined) setRootMode(this.store.dataDir(volumeId), parseInt(params.mode, 8));
    const modified = withMutableParameters(record, params);
    if (modified) await this.store.update(modified);
  }

  async capacity(driver: Driver, _params: Record<string, string>, caps: readonly Capability[], topology: Topology | undefined): Promise<number> {
    if (topology !== undefined && !matchesThisNode(topology, driver)) return 0;
    if (caps.some((c) => unsupportedReason(c, MEMORY_PROFILE) !== undefined)) return 0;
    return this.store.promisable();
  }

  source(_driver: Driver, record: VolumeRecord): VolumeSource {
    const store = this.store;
    return {
      layout: "dir",
      async read(fn) {
        if (!store.tmpfsMounted(record.volumeId)) throw failedPrecondition(`volume ${record.volumeId} cannot be copied: its tmpfs is not mounted`);
        return fn({ path: store.dataDir(record.volumeId), layout: "dir", live: true });
      },
      groupProblem: () => undefined,
    };
  }
}

export const memoryBackend: BackendFactory = {
  name: "memory",
  async open(config: DriverConfig, log: Logger) {
    return new MemoryBackend(await MemoryStore.open(config.root, log));
  },
};
