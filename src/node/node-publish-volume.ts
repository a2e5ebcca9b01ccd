/**
 * NodePublishVolume: put a staged volume where one pod will see it.
 *
 * The staging path is bound at the pod's target path; `readonly` and the
 * capability's mount flags become per-mount flags of that bind, so one
 * volume can be read-write for one pod and read-only for another. A pod's
 * fsGroup (volume_mount_group) is applied to the volume's root
 * (mount-group.ts), and a read-only attachment (attachment-check.ts) makes
 * the mount read-only. (A block volume's device is bound onto a target
 * file instead, and a read-only one gets a read-only device:
 * src/node/layouts/block.ts.)
 *
 * Repeating the call with the same arguments is a no-op; different
 * arguments on the same target are ALREADY_EXISTS. Access modes that allow
 * one workload (SINGLE_NODE_WRITER, SINGLE_NODE_READER_ONLY,
 * SINGLE_NODE_SINGLE_WRITER = Kubernetes' ReadWriteOncePod) refuse a
 * second target with FAILED_PRECONDITION, as the spec's table says
 * (single-writer.ts).
 *
 * With volume_context "csi.storage.k8s.io/ephemeral": "true" the call is
 * for an inline volume, which has no staging path: the volume is made here
 * and bound from its own directory (ephemeral.ts). A shared volume's
 * staging mount is bound through mount(8) with a deadline
 * (shared-volume.ts).
 */
import type { NodePublishVolumeRequest, NodePublishVolumeResponse } from "../gen/csi";
import { sameCapability, toCapability, type Capability } from "../csi/capabilities";
import { volumeRef } from "../storage/volumes";
import { findSharedVolume, publishShared } from "./shared-volume";
import { alreadyExists, failedPrecondition } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { isReadOnly, readOnlyBits } from "../mount/bind";
import { mountAt } from "../mount/mountinfo";
import { MS, type BindFlags } from "../mount/options";
import { isStaleDeviceBind, volumeMountAt } from "../mount/volume-mounts";
import type { Driver } from "../server/driver";
import { defineRpc } from "../server/rpc";
import { checkAttachment } from "./attachment-check";
import { isEphemeralRequest, nodeLockKeys, prepareEphemeral, removeEphemeralIfUnused } from "./ephemeral";
import { nodeLayout } from "./layouts";
import { applyVolumeMountGroup } from "./mount-group";
import { anchor, childPath, describeMount, nodePath, withAnchor, withMountTarget, type NodePath } from "./node-path";
import { secondTargetProblem } from "./single-writer";
import { findVolume, nodeCapability, requireDeliverable, type NodeVolume } from "./staged-volume";
import { mountOwner, unmountOwned } from "./volume-owner";

export const nodePublishVolume = defineRpc<NodePublishVolumeRequest, NodePublishVolumeResponse>({
  // An inline volume is also locked under its store ID.
  lockKeys: (req, driver) => nodeLockKeys(driver, req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const target = nodePath(driver, req.targetPath, "target_path");
    const ref = volumeRef(volumeId);
    if (ref.backend === "nfs") {
      const cap = toCapability(req.volumeCapability, "volume_capability");
      const publishContext = checkMap(req.publishContext, "publish_context");
      const volumeContext = checkMap(req.volumeContext, "volume_context");
      checkMap(req.secrets, "secrets");
      if (!req.stagingTargetPath) throw failedPrecondition("staging_target_path is required: this driver stages volumes (STAGE_UNSTAGE_VOLUME)");
      const staging = nodePath(driver, req.stagingTargetPath, "staging_target_path");
      const vol = await findSharedVolume(driver, volumeId, ref.id, volumeContext);
      const attachment = checkAttachment(driver, volumeId, publishContext);
      await publishShared(driver, vol, { staging, target, cap, readonly: req.readonly === true, forcedReadOnly: attachment.readonly });
      return {};
    }
    const { cap, flags } = nodeCapability(driver, req.volumeCapability);
    const publishContext = checkMap(req.publishContext, "publish_context");
    const volumeContext = checkMap(req.volumeContext, "volume_context");
    checkMap(req.secrets, "secrets");
    const readonly = req.readonly === true;

    if (isEphemeralRequest(volumeContext)) {
      const { vol, created } = await prepareEphemeral(driver, { volumeId, cap, volumeContext, stagingTargetPath: req.stagingTargetPath });
      try {
        await publishAt(driver, { volumeId, vol, source: { path: vol.dataDir }, target, cap, flags, readonly, forcedReadOnly: false });
      } catch (err) {
        // A volume made by this very call and never mounted holds nothing:
        // do not leave it for a pod that may never come back for it.
        if (created) await removeEphemeralIfUnused(driver, volumeId);
        throw err;
      }
      return {};
    }

    if (!req.stagingTargetPath) {
      throw failedPrecondition("staging_target_path is required: this driver stages volumes (STAGE_UNSTAGE_VOLUME)");
    }
    const staging = nodePath(driver, req.stagingTargetPath, "staging_target_path");
    const vol = await findVolume(driver, volumeId);
    const attachment = checkAttachment(driver, volumeId, publishContext);
    requireDeliverable(driver, vol, cap);
    const layout = nodeLayout(vol.layout);
    const staged = layout.stagedChild ? childPath(staging, layout.stagedChild) : staging;
    if (!volumeMountAt(vol.mounts, staged.real)) {
      throw failedPrecondition(`volume ${volumeId} is not staged at ${staging.given}; call NodeStageVolume first`);
    }
    await publishAt(driver, { volumeId, vol, source: { staged }, target, cap, flags, readonly, forcedReadOnly: attachment.readonly });
    return {};
  },
});

interface Publish {
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

async function publishAt(driver: Driver, p: Publish): Promise<void> {
  const { vol, target, cap, readonly } = p;
  const volumeId = vol.record.volumeId;
  const layout = nodeLayout(vol.layout);
  const { entries, mounts } = vol.mounts;
  const kernelReadOnly = readonly || p.forcedReadOnly || (p.flags.bits & MS.RDONLY) !== 0;
  const fileSystem = vol.layout !== "block";
  const sourcePath = "staged" in p.source ? p.source.staged.real : p.source.path;

  const existing = volumeMountAt(vol.mounts, target.real);
  if (existing) {
    const rec = driver.nodeRecords.get("publish", target.real);
    const same = isReadOnly(existing) === kernelReadOnly && (!rec || (rec.readonly === readonly && sameCapability(rec.capability, cap)));
    if (!same) throw alreadyExists(`volume ${volumeId} is already published at ${target.given} with a different capability or readonly flag`);
    if (fileSystem) await withAnchor(target, (a) => applyVolumeMountGroup(cap, a.at, kernelReadOnly)); // finish what a crash may have cut short
    return;
  }
  const occupant = mountAt(entries, target.real);
  if (occupant && vol.layout === "block" && isStaleDeviceBind(entries, occupant)) await unmountOwned(target, (await mountOwner(driver, volumeId))!);
  else if (occupant) throw alreadyExists(`something else is already mounted at ${target.given}: ${describeMount(occupant)}`);

  const others = mounts.filter((m) => m.mountPoint !== sourcePath && m.mountPoint !== target.real).map((m) => m.mountPoint);
  const problem = secondTargetProblem(driver, vol.record, cap, others);
  if (problem) throw failedPrecondition(problem);

  driver.nodeRecords.put("publish", { volumeId, path: target.real, capability: cap, readonly });
  // The source is reached the same way as the target: through its open parent, never by a path a symlink could redirect.
  const src = "staged" in p.source ? anchor(p.source.staged) : undefined;
  if ("staged" in p.source && !src) throw failedPrecondition(`${p.source.staged.given} is gone; stage the volume again`);
  try {
    await withMountTarget(target, layout.placeKind, async (place) => {
      if (fileSystem) applyVolumeMountGroup(cap, src?.at ?? sourcePath, kernelReadOnly);
      await layout.publish(vol, src?.at ?? sourcePath, place, readOnlyBits(kernelReadOnly, p.flags.bits), kernelReadOnly);
    }, { madeFor: p.volumeId });
  } finally {
    src?.close();
  }
}
