/**
 * The nfs backend: volumes as subdirectories of a share every node mounts.
 *
 * A volume is a directory on an NFS export (`server` + `share`, mounted
 * with mount(8) under deadlines) or on a path the hosts already mount
 * (`share` alone). Any node reaches it and any number of pods may write it
 * at once (ReadWriteMany); its size is a label. The ID carries where the
 * volume is (volume-id.ts), so a node plugin or a controller elsewhere can
 * use it without this controller's record — but an ID alone proves
 * nothing: only shares the administrator allowed are used
 * (allowed-shares.ts), and nothing is deleted or changed without the
 * marker that says the driver made that very directory for that very ID
 * (store.ts, share-delete.ts). Every file operation on a share runs in a share agent with a
 * deadline (share-io.ts), so a hung server costs a call, not the driver.
 */
import { requireSupported, toCapability, unsupportedReason, type Capability } from "../../csi/capabilities";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "../../csi/errors";
import { mountTable } from "../../mount/mountinfo";
import type { Driver, DriverConfig } from "../../server/driver";
import type { Logger } from "../../server/logger";
import { withMutableParameters, type VolumeRecord } from "../../storage/volume-record";
import { chooseSize, type Range } from "../../controller/capacity";
import { describeSource, sizeWithSource } from "../../controller/content-source";
import { unfitProblem } from "../../controller/mutable-parameters";
import { sharedSegment } from "../../controller/topology";
import { CONTEXT } from "../../controller/volume-view";
import type { MountOwner } from "../../node/volume-owner";
import type { Backend, BackendFactory, NewVolumeRequest, NodeBackend, VolumeSource } from "../backend";
import { findSharedVolume, publishShared, recordedHere, sharedStats, stageShared } from "./node";
import { planShared, SHARED_RULES } from "./parameters";
import { deleteSharedVolume } from "./share-delete";
import { ShareSnapshots } from "./share-snapshots";
import { shareEnd } from "./share-views";
import { sharedProfile } from "./profile";
import { locationOf, SharedStore, sharedStore } from "./store";
import { looksShared, parseSharedId, type SharedLocation } from "./volume-id";
import { mountIdentity, sharedVolumeMounts } from "./volume-mounts";

const nfsNode: NodeBackend = {
  capability: (_driver, _volumeId, cap) => toCapability(cap, "volume_capability"),

  async stage(driver, req) {
    const vol = await findSharedVolume(driver, req.volumeId, parseSharedId(req.volumeId)!, req.volumeContext);
    await stageShared(driver, vol, req.staging, req.cap, req.readonly);
  },

  async publish(driver, req) {
    const vol = await findSharedVolume(driver, req.volumeId, parseSharedId(req.volumeId)!, req.volumeContext);
    await publishShared(driver, vol, { staging: req.staging, target: req.target, cap: req.cap, readonly: req.readonly, forcedReadOnly: req.forcedReadOnly });
  },

  async owner(driver, volumeId): Promise<MountOwner | undefined> {
    const store = sharedStore(driver);
    const loc = await store.locate(parseSharedId(volumeId)!);
    if (!loc) return undefined;
    const id = await mountIdentity(store.io, loc);
    return {
      volumeId,
      detach: true, // never wait on a server that is gone
      placeKind: "dir",
      owns: (m) => {
        // What this process itself mounted for the volume counts whether the share answers or not.
        if (recordedHere(driver, volumeId, m)) return true;
        // Any other mount only the share can place: with no answer from it, its UNAVAILABLE (nothing is unmounted, nor called another's).
        if ("unknown" in id) throw id.unknown;
        return id.test(m);
      },
    };
  },

  async stats(driver, volumeId, volumePath) {
    return sharedStats(driver, await findSharedVolume(driver, volumeId, parseSharedId(volumeId)!, {}), volumePath);
  },

  async expand(driver, req) {
    // A shared volume's size is a label: nothing on the node depends on it.
    const owner = await this.owner(driver, req.volumeId);
    const table = mountTable();
    const m = table.at(req.volumePath);
    // owns answers UNAVAILABLE where only the share could say whose the mount is and it gave no answer.
    if (!owner || !m || !owner.owns(m, table)) throw notFound(`volume ${req.volumeId} is not staged or published at ${req.volumePath}`);
    const record = await sharedStore(driver).records.getById(req.volumeId);
    return record?.capacityBytes ?? req.range.required;
  },
};

export class NfsBackend implements Backend {
  readonly name = "nfs";
  readonly summary = "a directory on a share every node mounts (NFS), used from any node by any number of pods";
  readonly heldElsewhere = true;
  readonly groupSnapshots = false;
  readonly parameterRules = SHARED_RULES;
  /** What some share could deliver: an NFS export also takes file system mount options (create checks the share it names). */
  readonly anyProfile = sharedProfile({ server: "any" });
  readonly node = nfsNode;

  constructor(
    readonly store: SharedStore,
    readonly snapshots: ShareSnapshots,
  ) {}

  checkParameters(params: Record<string, string>): void {
    if (params.share === undefined) throw invalidArgument("backend nfs needs the parameter share (the export's path, or a local path mounted on every node)");
  }

  ownsId(volumeId: string): boolean {
    return looksShared(volumeId);
  }

  idFor(name: string, params: Record<string, string>): string {
    const plan = planShared(params, name);
    return this.store.idFor(plan.location, plan.onDelete).id;
  }

  get(volumeId: string) {
    return this.store.records.getById(volumeId);
  }

  async existsElsewhere(volumeId: string): Promise<boolean> {
    // Another node's provisioner made it: the driver's marker on the share is the proof, as for CreateSnapshot.
    return (await this.store.provenLocation(volumeId, parseSharedId(volumeId)!)) !== undefined;
  }

  get count(): number {
    return this.store.records.count;
  }

  page(after: string, limit: number) {
    return this.store.records.page(after, limit);
  }

  listed(): boolean {
    return true;
  }

  profile(record: VolumeRecord) {
    return sharedProfile(record.shared!);
  }

  condition(record: VolumeRecord) {
    return this.store.condition(locationOf(record)!);
  }

  context(record: VolumeRecord): Record<string, string> {
    const s = record.shared!;
    return { ...(s.server ? { [CONTEXT.server]: s.server } : {}), [CONTEXT.share]: s.share, [CONTEXT.subDir]: s.subDir };
  }

  topology(driver: Driver): Record<string, string>[] {
    return [sharedSegment(driver)]; // every node that can reach shares (controller/topology.ts)
  }

  async create(driver: Driver, req: NewVolumeRequest): Promise<VolumeRecord> {
    const plan = planShared(req.parameters, req.name);
    const named = await this.store.records.volumeNamed(req.name);
    if (named !== undefined) {
      throw alreadyExists(`volume ${JSON.stringify(req.name)} already exists as ${named}, on another share or subDir than these parameters name`);
    }
    const refused = this.store.notAllowed(plan.location);
    if (refused) throw invalidArgument(`parameter share: ${refused}`);
    requireSupported(req.caps, sharedProfile(plan.location));
    const unfit = unfitProblem("dir", req.mutableParameters);
    if (unfit) throw invalidArgument(unfit);
    const source = req.source;
    if (source && source.layout !== "dir") {
      throw invalidArgument(`the content source ${describeSource(source.contentSource)} is a ${source.layout} volume; only a directory tree can be copied into a shared volume`);
    }
    const capacityBytes = source ? sizeWithSource(req.range, driver.config.defaultCapacityBytes, source.minBytes) : chooseSize(req.range, driver.config.defaultCapacityBytes);
    const mode = req.mutableParameters.mode !== undefined ? parseInt(req.mutableParameters.mode, 8) : plan.mode;
    return this.store.create(
      {
        name: req.name,
        location: plan.location,
        onDelete: plan.onDelete,
        mode,
        ...(plan.uid !== undefined ? { uid: plan.uid } : {}),
        ...(plan.gid !== undefined ? { gid: plan.gid } : {}),
        capacityBytes,
        record: {
          capabilities: [...req.caps],
          parameters: req.parameters,
          mutableParameters: req.mutableParameters,
          ...(source ? { contentSource: source.contentSource } : {}),
        },
      },
      source?.fill && { viewsDir: driver.snapshots.viewsDir, copy: source.fill },
    );
  }

  async converge(): Promise<void> {}

  async holdsName(name: string): Promise<boolean> {
    // A shared volume's ID depends on its StorageClass, not on its name alone: its records say.
    return (await this.store.records.volumeNamed(name)) !== undefined;
  }

  async delete(driver: Driver, volumeId: string): Promise<string> {
    const id = parseSharedId(volumeId)!;
    const here = await this.mountedHere(driver, volumeId);
    if (here.length > 0) throw failedPrecondition(`volume ${volumeId} is still mounted at ${here.join(", ")}; unpublish and unstage it first`);
    return deleteSharedVolume(this.store, volumeId, id);
  }

  async mountedHere(_driver: Driver, volumeId: string): Promise<string[]> {
    const loc = await this.store.locate(parseSharedId(volumeId)!);
    // Mounts on other nodes are out of sight (the CO unpublishes first); a share that does not answer shows none.
    const here = loc && (await sharedVolumeMounts(this.store.io, loc));
    return (here ?? []).map((m) => m.mountPoint);
  }

  async expand(_driver: Driver, volumeId: string, record: VolumeRecord | undefined, range: Range) {
    if (!record) {
      // Made by a node plugin's provisioner: its size is a label, answered when the driver can prove it made it.
      if (await this.store.provenLocation(volumeId, parseSharedId(volumeId)!)) return { capacityBytes: range.required || range.limit, nodeExpansionRequired: false };
      await this.store.refuseLost(volumeId, parseSharedId(volumeId)!, "expanded");
      throw notFound(`volume ${volumeId} does not exist`);
    }
    if (range.required <= record.capacityBytes) return { capacityBytes: record.capacityBytes, nodeExpansionRequired: false };
    const condition = await this.condition(record);
    if (condition.abnormal) throw failedPrecondition(`volume ${volumeId} cannot be expanded: ${condition.message}`);
    await this.store.records.put({ ...record, capacityBytes: range.required });
    return { capacityBytes: range.required, nodeExpansionRequired: false };
  }

  async modify(_driver: Driver, volumeId: string, record: VolumeRecord | undefined, params: Record<string, string>): Promise<void> {
    const loc = record ? locationOf(record) : await this.store.provenLocation(volumeId, parseSharedId(volumeId)!);
    const unfit = unfitProblem("dir", params);
    if (!loc) {
      if (!unfit) await this.store.refuseLost(volumeId, parseSharedId(volumeId)!, "modified");
      throw notFound(`volume ${volumeId} does not exist`);
    }
    if (unfit) throw invalidArgument(`volume ${volumeId}: ${unfit}`);
    if (record) {
      const condition = await this.condition(record);
      if (condition.abnormal) throw failedPrecondition(`volume ${volumeId} cannot be modified: ${condition.message}`);
    }
    if (params.mode !== undefined) await this.store.setMode(loc, parseInt(params.mode, 8));
    const modified = record && withMutableParameters(record, params);
    if (modified) await this.store.records.put(modified);
  }

  async capacity(_driver: Driver, params: Record<string, string>, caps: readonly Capability[]): Promise<number> {
    const share = { server: params.server ?? "", share: params.share! };
    if (caps.some((c) => unsupportedReason(c, sharedProfile(share)) !== undefined)) return 0;
    return (await this.store.usage(share)).availableBytes;
  }

  source(driver: Driver, record: VolumeRecord): VolumeSource {
    const loc: SharedLocation = locationOf(record)!;
    const store = this.store;
    return {
      layout: "dir",
      async read(fn) {
        // Probed first, so a share that does not answer fails the call instead of hanging the copy.
        await store.checkCopyable(record.volumeId, loc);
        // A read-only view that no symlink leads out of, whatever pods or other nodes do meanwhile (share-views.ts): copied as it is.
        return store.withVolumeView(record.volumeId, loc, driver.snapshots.viewsDir, (view) => fn({ path: view, layout: "dir", live: false, share: shareEnd(store.io, loc) }));
      },
      groupProblem: () => undefined,
    };
  }
}

export const nfsBackend: BackendFactory = {
  name: "nfs",
  async open(config: DriverConfig, log: Logger) {
    const store = await SharedStore.open(
      config.root,
      {
        mount: { program: config.mountProgram, timeoutMs: config.mountTimeoutMs },
        shareTimeoutMs: config.shareTimeoutMs,
        allowedShares: config.allowedShares,
      },
      log,
    );
    return new NfsBackend(store, await ShareSnapshots.open(config.root, store, log));
  },
};
