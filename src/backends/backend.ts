/**
 * The seam: what a backend — a place where volumes live — must do.
 *
 * The CSI calls are the same whatever holds a volume: validate the
 * request, lock the volume, find an earlier try (idempotency), answer with
 * the spec's codes. What differs is where and how the volume is kept: a
 * directory or an image on one node's disk (hostpath), a directory on a
 * share every node mounts (nfs), a tmpfs in the node's memory (memory).
 * The RPC handlers (src/controller, src/node, src/group-controller) keep
 * the CSI part and ask a Backend for the rest; they never name one. Which
 * backend holds a volume is said by its ID (`ownsId`), and which one a new
 * volume goes to by its StorageClass's `backend` parameter. The list of
 * backends is one line (index.ts).
 *
 * A backend is opened once per driver (it may keep state: records under
 * the root, an index, agents) and is handed the Driver on each call for
 * what every backend shares: the configuration, the snapshot store, the
 * node's records, the log.
 */
import type { Capability, CapabilityProfile } from "../csi/capabilities";
import type { NodeGetVolumeStatsResponse, Topology, TopologyRequirement, VolumeCapability } from "../gen/csi";
import type { Driver, DriverConfig } from "../server/driver";
import type { Logger } from "../server/logger";
import type { CallContext } from "../server/rpc";
import type { Content, ShareEnd } from "../storage/copy-content";
import type { Condition, ContentSource, VolumeLayout, VolumeRecord } from "../storage/volume-record";
import type { SnapshotRecord } from "../storage/snapshot-record";
import type { NodePath } from "../node/node-path";
import type { MountOwner } from "../node/volume-owner";
import type { Range } from "../controller/capacity";

/** One StorageClass parameter's check: why the value is wrong, or undefined. */
export type ParameterRule = (value: string) => string | undefined;

/** A call's deadline and log, for work that must end with the call (a frozen file system). */
export type CallHold = Pick<CallContext, "signal" | "log">;

/** Content a new volume starts with (CreateVolume from a snapshot or a volume), planned by the RPC. */
export interface SourcePlan {
  /** What the new volume's record will say it came from. */
  contentSource: ContentSource;
  /** How the source keeps its content; the new volume keeps it the same way. */
  layout: VolumeLayout;
  /** For an "image" source, the file system inside it. */
  fsType?: string;
  /** The least size the new volume may have. */
  minBytes: number;
  /** Copies the source into the new volume's staging place, before its commit; `into` when that place is a view of a share. */
  fill?: (staging: string, into?: ShareEnd) => Promise<void>;
}

/** CreateVolume, checked: what the backend is asked to make. */
export interface NewVolumeRequest {
  name: string;
  caps: readonly Capability[];
  range: Range;
  parameters: Record<string, string>;
  mutableParameters: Record<string, string>;
  accessibility: TopologyRequirement | undefined;
  source: SourcePlan | undefined;
}

/** A volume's content as a snapshot or a clone reads it. */
export interface VolumeSource {
  layout: VolumeLayout;
  fsType?: string;
  /**
   * Run `fn` with the content reachable at a local path (a share may be
   * mounted for it), after checking it is in the state its record says.
   */
  read<T>(fn: (content: Content) => Promise<T>): Promise<T>;
  /**
   * For a group snapshot, which must be one point in time: why this volume
   * cannot be held still with the others right now, if it cannot.
   */
  groupProblem(): string | undefined;
}

/** What CreateSnapshot was asked, checked: for a backend that keeps its volumes' snapshots itself. */
export interface NewSnapshotRequest {
  snapshotId: string;
  name: string;
  sourceVolumeId: string;
  parameters: Record<string, string>;
}

/**
 * Snapshots a backend keeps where every node can reach them (a shared
 * volume's, on its share), instead of in this controller's snapshot store:
 * each is found from its ID alone, by whichever node is asked.
 */
export interface BackendSnapshots {
  /** Does this snapshot ID have this backend's shape? */
  ownsId(snapshotId: string): boolean;
  /** The ID CreateSnapshot of `name` from this backend's volume gets here; undefined: the snapshot store keeps it. */
  idFor(name: string, sourceVolumeId: string): string | undefined;
  /** The snapshot, read where it is kept (INVALID_ARGUMENT for an ID of this shape it cannot read). */
  get(snapshotId: string): Promise<SnapshotRecord | undefined>;
  /** The ID of a snapshot this controller took under `name`, if any (names are unique across stores). */
  named(name: string): string | undefined;
  /** A retry of CreateSnapshot found it (a crash may have come before this controller noted it): make sure it is listed here. */
  found(record: SnapshotRecord): Promise<void>;
  /** Copy the volume into a new snapshot `req.snapshotId` (none of that ID exists). */
  create(driver: Driver, req: NewSnapshotRequest, call: CallHold): Promise<SnapshotRecord>;
  /** Delete it; false if there was none. */
  delete(snapshotId: string): Promise<boolean>;
  /** A page of the IDs this controller took, in ID order, after `after`; only `sourceVolumeId`'s if given. */
  page(after: string, limit: number, sourceVolumeId?: string): { ids: string[]; more: boolean };
  /** This controller's copy of the record, for a listing (no trip to where the snapshot is). */
  listed(snapshotId: string): Promise<SnapshotRecord | undefined>;
  /** Run `fn` with the snapshot's content at a local path (a share may be mounted for it, and a view of the content). */
  read<T>(driver: Driver, record: SnapshotRecord, fn: (content: Content) => Promise<T>): Promise<T>;
}

/** Node calls for one backend; the RPC has checked the paths (node-path.ts) and the attachment. */
export interface NodeBackend {
  /** The capability of a node call on volume `volumeId`, checked as far as any volume of this backend could take it. */
  capability(driver: Driver, volumeId: string, cap: VolumeCapability | undefined): Capability;
  stage(driver: Driver, req: StageRequest): Promise<void>;
  publish(driver: Driver, req: PublishRequest): Promise<void>;
  /** What of the volume may be unmounted and removed here; undefined when the ID is not one this node can resolve. */
  owner(driver: Driver, volumeId: string): Promise<MountOwner | undefined>;
  /** The volume's usage where it is mounted at `volumePath` (NOT_FOUND if it is not). */
  stats(driver: Driver, volumeId: string, volumePath: string): Promise<NodeGetVolumeStatsResponse>;
  /** Make what the node holds of the volume as large as `range` asks (growing it here if its record is smaller); its size. */
  expand(driver: Driver, req: ExpandRequest): Promise<number>;
}

export interface ExpandRequest {
  volumeId: string;
  /** volume_path, symlinks resolved */
  volumePath: string;
  /** staging_target_path, when the request has one */
  staging: NodePath | undefined;
  range: Range;
  cap: Capability | undefined;
}

export interface StageRequest {
  volumeId: string;
  staging: NodePath;
  cap: Capability;
  /** A read-only attachment: stage read-only. */
  readonly: boolean;
  volumeContext: Record<string, string>;
}

export interface PublishRequest {
  volumeId: string;
  staging: NodePath;
  target: NodePath;
  cap: Capability;
  readonly: boolean;
  /** A read-only attachment, or a reader-only access mode: the mount is read-only whatever was asked. */
  forcedReadOnly: boolean;
  volumeContext: Record<string, string>;
}

/** Ephemeral inline volumes (a pod's `csi:` volume): made by NodePublishVolume, gone with its last target. */
export interface EphemeralBackend {
  /** The ID the backend keeps an inline volume under (locked with the kubelet's). */
  storeId(volumeId: string): string;
  publish(driver: Driver, req: { volumeId: string; target: NodePath; cap: Capability; readonly: boolean; volumeContext: Record<string, string> }): Promise<void>;
  /** After a target was unpublished: remove the inline volume if nothing mounts it any more. */
  removeIfUnused(driver: Driver, volumeId: string): Promise<boolean>;
}

export interface Backend {
  /** The StorageClass's `backend` value. */
  readonly name: string;
  /** One line on what a volume of this backend is, for messages and docs. */
  readonly summary: string;
  /** Its StorageClass parameters (besides `backend`). */
  readonly parameterRules: Readonly<Record<string, ParameterRule>>;
  /** Rules across keys, once each key passed its own (INVALID_ARGUMENT). */
  checkParameters(params: Record<string, string>): void;
  /** Does this volume ID have this backend's shape? */
  ownsId(volumeId: string): boolean;
  /**
   * Volumes of this backend may be made and recorded by another driver
   * process (any node can reach them), so a missing record here does not
   * mean a missing volume.
   */
  readonly heldElsewhere: boolean;
  /** The ID CreateVolume of `name` with `params` makes: a retry finds its volume, and locks it. */
  idFor(name: string, params: Record<string, string>): string;
  /** What any volume of this backend could deliver (checked before its form is chosen). */
  readonly anyProfile: CapabilityProfile;

  /** This process's record of the volume, if it has one. */
  get(volumeId: string): Promise<VolumeRecord | undefined>;
  /**
   * For a volume this process holds no record of: can the backend prove it
   * exists all the same (made and recorded by another driver process)?
   * Only where volumes are heldElsewhere; elsewhere no record is no volume.
   */
  existsElsewhere?(volumeId: string): Promise<boolean>;
  readonly count: number;
  /** A page of the IDs it holds, in ID order, after `after`. */
  page(after: string, limit: number): { ids: string[]; more: boolean };
  /** Whether ListVolumes shows it (an inline volume is the kubelet's business). */
  listed(record: VolumeRecord): boolean;
  profile(record: VolumeRecord): CapabilityProfile;
  condition(record: VolumeRecord): Promise<Condition>;
  /** volume_context handed back to the node calls. */
  context(record: VolumeRecord): Record<string, string>;
  /** Where it can be reached from: segments, or [] for everywhere. */
  topology(driver: Driver, record: VolumeRecord): Record<string, string>[];

  /** Make a new volume (no earlier one of that name exists). */
  create(driver: Driver, req: NewVolumeRequest, call: CallHold): Promise<VolumeRecord>;
  /** A retry found `record`: finish what a crash may have cut short. */
  converge(driver: Driver, record: VolumeRecord): Promise<void>;
  /** Delete it (refusing while it is mounted or without proof it is the driver's); what was done, for the log. */
  delete(driver: Driver, volumeId: string): Promise<string>;
  /** Where the volume is mounted on this node (a volume in use is not deleted or detached). */
  mountedHere(driver: Driver, volumeId: string): Promise<string[]>;
  /** Is a volume of this name here? (Names are unique across backends.) */
  holdsName(name: string): Promise<boolean>;
  /** Grow it (record undefined: this process holds none of it). */
  expand(driver: Driver, volumeId: string, record: VolumeRecord | undefined, range: Range): Promise<{ capacityBytes: number; nodeExpansionRequired: boolean }>;
  /** Apply checked mutable parameters (record undefined: this process holds none of it). */
  modify(driver: Driver, volumeId: string, record: VolumeRecord | undefined, params: Record<string, string>): Promise<void>;
  /** Bytes that could still be provisioned for these parameters, capabilities and topology (0: none here). */
  capacity(driver: Driver, params: Record<string, string>, caps: readonly Capability[], topology: Topology | undefined): Promise<number>;
  /** The volume's content, as a snapshot or clone reads it. */
  source(driver: Driver, record: VolumeRecord, call: CallHold): VolumeSource;

  /** Can its volumes be members of a group snapshot (one point in time across them)? */
  readonly groupSnapshots: boolean;

  /** Where its volumes' snapshots are kept, if not in the controller's snapshot store. */
  readonly snapshots?: BackendSnapshots;

  readonly node: NodeBackend;
  readonly ephemeral?: EphemeralBackend;
}

/** How a backend comes to be: opened once per driver, before anything is served. */
export interface BackendFactory {
  readonly name: string;
  open(config: DriverConfig, log: Logger): Promise<Backend>;
}
