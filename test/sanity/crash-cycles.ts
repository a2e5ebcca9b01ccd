/**
 * The volume lives the crash explorer kills the driver in: one cycle per
 * backend and parameters, each a list of steps (crash-steps.ts) — RPCs, in
 * the order a CO makes them, and the checks between them that a volume
 * keeps what was written to it.
 *
 * A step's arguments come only from the cycle's fixed names and from what
 * earlier steps answered, so a step run again after a crash sends exactly
 * what it sent the first time, as a CO's retry does.
 */
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import { canGrowExt4Online } from "../../src/mount/filesystem";
import { Code, mountCapability } from "./harness";
import {
  attachSteps,
  BLOCK,
  checkMarker,
  create,
  deleteVolume,
  grown,
  IMAGE,
  IMAGE_XFS,
  MEMORY,
  MiB,
  nodeSteps,
  NONE,
  plain,
  QUOTA,
  SHARED,
  staging,
  target,
  volume,
  writeMarker,
  type Step,
  type VolumeKind,
} from "./crash-steps";
import type { LoopFsKind } from "./loop-fs";

export type { CycleState, Step } from "./crash-steps";

export interface Cycle {
  /** e.g. "hostpath capacity=none" */
  name: string;
  /** Flags the driver is started with (beyond the harness's). */
  driverArgs?: string[];
  steps: Step[];
  /** Snapshot RPCs among the steps: ListSnapshots must be empty at the end too. */
  snapshots?: boolean;
  /** A root on a loop file system of this kind (one per cycle, made with its first driver), for what needs one: quotas. */
  root?: LoopFsKind;
  /** The explored steps `npm test` runs (killed before each call); the whole matrix is `npm run crash-explore`. */
  fast?: RegExp;
  /** Of `fast`'s kills, those whose start-up `npm test` explores too (killed before each of its calls), by their description. */
  fastStartup?: RegExp;
}

/** A volume "restored" from the snapshot named `source`, through its whole life, its content checked while published. */
function restoredLife(kind: VolumeKind, source: string, exploreCreate: boolean): Step[] {
  const restored = nodeSteps("restored", kind, false);
  return [
    create("restored", kind, exploreCreate, source),
    restored.stage,
    restored.publish,
    checkMarker("restored", kind),
    restored.unpublish,
    restored.unstage,
    deleteVolume("restored", false),
  ];
}

/**
 * A volume's whole life: create, stage, publish, write, unpublish, unstage;
 * then stage and publish again to read what was written, and delete. The
 * first time of each RPC is explored.
 */
function volumeLife(kind: VolumeKind): Step[] {
  const first = nodeSteps("vol", kind, true);
  const again = nodeSteps("vol", kind, false);
  return [
    create("vol", kind),
    first.stage,
    first.publish,
    writeMarker("vol", kind),
    first.unpublish,
    first.unstage,
    again.stage,
    again.publish,
    checkMarker("vol", kind),
    again.unpublish,
    again.unstage,
    deleteVolume("vol"),
  ];
}

/**
 * A snapshot's life: a volume with a file, a snapshot of it (taken while it
 * is published, as a CO does), a volume restored from it that must hold the
 * file, and everything deleted. The snapshot RPCs and the restore are
 * explored; the rest is the volume life's.
 */
function snapshotLife(kind: VolumeKind): Step[] {
  const vol = nodeSteps("vol", kind, false);
  return [
    create("vol", kind, false),
    vol.stage,
    vol.publish,
    writeMarker("vol", kind),
    {
      name: "CreateSnapshot snap",
      explore: true,
      run: async (s) => {
        const res = await s.d.client.controller.createSnapshot({ name: "snap", sourceVolumeId: volume(s, "vol").volumeId });
        s.snapshots.set("snap", res.snapshot!.snapshotId!);
      },
    },
    ...restoredLife(kind, "snap", true),
    { name: "DeleteSnapshot snap", explore: true, run: async (s) => void (await s.d.client.controller.deleteSnapshot({ snapshotId: s.snapshots.get("snap")! })) },
    vol.unpublish,
    vol.unstage,
    deleteVolume("vol", false),
  ];
}

/**
 * A volume's life with the controller's part of it too: attached, staged,
 * published and written; expanded as Kubernetes does it offline
 * (ControllerExpandVolume while unstaged, the file system grown by the next
 * NodeStageVolume, then NodeExpandVolume); read; detached. (Online growth of
 * ext4 needs CAP_SYS_RESOURCE, which a driver may lack.)
 */
function expandedLife(kind: VolumeKind, attach: boolean): Step[] {
  const [before, after] = [nodeSteps("vol", kind, false), nodeSteps("vol", kind, false)];
  const { attach: attachStep, detach } = attachSteps("vol", kind);
  const bytes = 32 * MiB;
  return [
    create("vol", kind, false),
    ...(attach ? [attachStep] : []),
    before.stage,
    before.publish,
    writeMarker("vol", kind),
    before.unpublish,
    before.unstage,
    {
      name: "ControllerExpandVolume vol",
      explore: true,
      run: async (s) => void (await s.d.client.controller.controllerExpandVolume({ volumeId: volume(s, "vol").volumeId, capacityRange: { requiredBytes: bytes } })),
    },
    { ...after.stage, name: "NodeStageVolume vol, expanded", explore: true },
    after.publish,
    {
      name: "NodeExpandVolume vol",
      explore: true,
      run: async (s) => {
        const req = { volumeId: volume(s, "vol").volumeId, volumePath: target(s, "vol"), stagingTargetPath: staging(s, "vol"), capacityRange: { requiredBytes: bytes } };
        await s.d.client.node.nodeExpandVolume({ ...req, volumeCapability: kind.capability });
      },
    },
    grown("vol", kind, bytes),
    checkMarker("vol", kind),
    after.unpublish,
    after.unstage,
    ...(attach ? [detach] : []),
    deleteVolume("vol", false),
  ];
}

/**
 * A volume grown while a pod uses it (online): ControllerExpandVolume
 * while it is staged and published, then NodeExpandVolume grows the
 * mounted file system (xfs_growfs; ext4: resize2fs, whose
 * EXT4_IOC_RESIZE_FS needs CAP_SYS_RESOURCE — a driver without it answers
 * FAILED_PRECONDITION, having made the device follow the image, and the
 * file system grows offline at the next stage, which the cycle then makes).
 * Written before, read after, and its life ended.
 */
function onlineExpandedLife(kind: VolumeKind, fromBytes: number, toBytes: number): Step[] {
  const [vol, again] = [nodeSteps("vol", kind, false), nodeSteps("vol", kind, false)];
  const ext4WithoutCap = kind === IMAGE && !canGrowExt4Online();
  return [
    create("vol", kind, false, undefined, fromBytes),
    vol.stage,
    vol.publish,
    writeMarker("vol", kind),
    {
      name: "ControllerExpandVolume vol, published",
      explore: true,
      run: async (s) => void (await s.d.client.controller.controllerExpandVolume({ volumeId: volume(s, "vol").volumeId, capacityRange: { requiredBytes: toBytes } })),
    },
    {
      name: "NodeExpandVolume vol, online",
      explore: kind !== QUOTA, // a quota grows with ControllerExpandVolume alone
      run: async (s) => {
        const req = { volumeId: volume(s, "vol").volumeId, volumePath: target(s, "vol"), stagingTargetPath: staging(s, "vol"), capacityRange: { requiredBytes: toBytes } };
        try {
          await s.d.client.node.nodeExpandVolume({ ...req, volumeCapability: kind.capability });
        } catch (err) {
          const e = err as ServiceError;
          if (!(ext4WithoutCap && e.code === Code.FAILED_PRECONDITION && /CAP_SYS_RESOURCE/.test(e.details))) throw err;
        }
      },
    },
    ...(ext4WithoutCap ? [vol.unpublish, vol.unstage, again.stage, again.publish] : []),
    grown("vol", kind, toBytes),
    checkMarker("vol", kind),
    vol.unpublish,
    vol.unstage,
    deleteVolume("vol", false),
  ];
}

/** An ephemeral inline volume: made by NodePublishVolume, gone with NodeUnpublishVolume. */
function ephemeralLife(): Step[] {
  const volumeId = "csi-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  const volumeContext = { "csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.name": "web-0", "csi.storage.k8s.io/pod.namespace": "default", size: "16Mi" };
  const kind: VolumeKind = { capability: mountCapability(), parameters: plain() };
  return [
    {
      name: "NodePublishVolume (ephemeral)",
      explore: true,
      run: async (s) => {
        s.volumes.set("inline", { volumeId, volumeContext });
        mkdirSync(path.dirname(target(s, "inline")), { recursive: true });
        await s.d.client.node.nodePublishVolume({ volumeId, volumeContext, targetPath: target(s, "inline"), volumeCapability: kind.capability });
      },
    },
    writeMarker("inline", kind),
    checkMarker("inline", kind),
    { name: "NodeUnpublishVolume (ephemeral)", explore: true, run: async (s) => void (await s.d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target(s, "inline") })) },
  ];
}

/**
 * A group snapshot of two published volumes (an image's file systems are
 * frozen together for it), a volume restored from one member holding what
 * was written, and everything deleted.
 */
function groupLife(kind: VolumeKind): Step[] {
  const [a, b] = [nodeSteps("a", kind, false), nodeSteps("b", kind, false)];
  return [
    create("a", kind, false),
    create("b", kind, false),
    a.stage,
    a.publish,
    b.stage,
    b.publish,
    writeMarker("a", kind),
    {
      name: "CreateVolumeGroupSnapshot group",
      explore: true,
      run: async (s) => {
        const sourceVolumeIds = [volume(s, "a").volumeId, volume(s, "b").volumeId];
        const g = (await s.d.client.groupController.createVolumeGroupSnapshot({ name: "group", sourceVolumeIds })).groupSnapshot!;
        s.snapshots.set("group", g.groupSnapshotId!);
        s.snapshots.set("a-member", g.snapshots!.find((m) => m.sourceVolumeId === sourceVolumeIds[0])!.snapshotId!);
        s.snapshots.set("members", g.snapshots!.map((m) => m.snapshotId!).join(","));
      },
    },
    ...restoredLife(kind, "a-member", false),
    {
      name: "DeleteVolumeGroupSnapshot group",
      explore: true,
      run: async (s) => {
        const snapshotIds = s.snapshots.get("members")!.split(",");
        await s.d.client.groupController.deleteVolumeGroupSnapshot({ groupSnapshotId: s.snapshots.get("group")!, snapshotIds });
      },
    },
    a.unpublish,
    a.unstage,
    b.unpublish,
    b.unstage,
    deleteVolume("a", false),
    deleteVolume("b", false),
  ];
}

/** A shared volume made and deleted first, so that the share agent (a helper process) runs before the explored calls. */
function warmShareAgent(): Step[] {
  return [create("warm-up", SHARED, false), deleteVolume("warm-up", false)];
}

export const CYCLES: Cycle[] = [
  { name: "hostpath capacity=none", steps: volumeLife(NONE), fast: /./, fastStartup: /DeleteVolume vol \/ before driver pool thread's unlink #1:/ },
  { name: "hostpath capacity=image", steps: volumeLife(IMAGE), fast: /CreateVolume|DeleteVolume|NodeStageVolume|NodePublishVolume/ },
  { name: "hostpath block", steps: volumeLife(BLOCK), fast: /NodeStageVolume|NodePublishVolume/ },
  { name: "memory", steps: volumeLife(MEMORY) },
  { name: "nfs on a local share", steps: [...warmShareAgent(), ...volumeLife(SHARED)], fast: /DeleteVolume vol/ },
  { name: "snapshots, capacity=none", steps: snapshotLife(NONE), snapshots: true },
  { name: "snapshots, capacity=image", steps: snapshotLife(IMAGE), snapshots: true },
  { name: "snapshots, nfs on a local share", steps: [...warmShareAgent(), ...snapshotLife(SHARED)], snapshots: true },
  { name: "attached and expanded, capacity=image", driverArgs: ["--enable-attach"], steps: expandedLife(IMAGE, true) },
  { name: "attached and expanded, block", driverArgs: ["--enable-attach"], steps: expandedLife(BLOCK, true) },
  { name: "expanded, memory", steps: expandedLife(MEMORY, false) },
  { name: "expanded online, capacity=image (ext4)", steps: onlineExpandedLife(IMAGE, 16 * MiB, 32 * MiB), fast: /NodeExpandVolume/ },
  { name: "expanded online, capacity=image fsType=xfs", steps: onlineExpandedLife(IMAGE_XFS, 320 * MiB, 400 * MiB) },
  { name: "capacity=quota, ext4 project quotas", root: "ext4-prjquota", steps: volumeLife(QUOTA), fast: /DeleteVolume/ },
  { name: "expanded online, capacity=quota, ext4 project quotas", root: "ext4-prjquota", steps: onlineExpandedLife(QUOTA, 16 * MiB, 32 * MiB) },
  { name: "capacity=quota, XFS project quotas", root: "xfs-prjquota", steps: volumeLife(QUOTA) },
  { name: "capacity=quota, btrfs qgroups", root: "btrfs-quota", steps: volumeLife(QUOTA), fast: /DeleteVolume/ },
  { name: "expanded online, capacity=quota, btrfs qgroups", root: "btrfs-quota", steps: onlineExpandedLife(QUOTA, 16 * MiB, 32 * MiB) },
  { name: "ephemeral inline volume", steps: ephemeralLife() },
  { name: "group snapshot, capacity=image", steps: groupLife(IMAGE), snapshots: true },
];
