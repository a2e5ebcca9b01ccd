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
import { checkMap, checkPath, checkToken } from "../csi/validate";
import { isReadOnly, readOnlyBits, unmountAll } from "../mount/bind";
import { mountAt } from "../mount/mountinfo";
import { MS, type BindFlags } from "../mount/options";
import { isStaleDeviceBind, volumeMountAt } from "../mount/volume-mounts";
import type { Driver } from "../server/driver";
import { defineRpc } from "../server/rpc";
import { checkAttachment } from "./attachment-check";
import { isEphemeralRequest, nodeLockKeys, prepareEphemeral, removeEphemeralIfUnused } from "./ephemeral";
import { nodeLayout } from "./layouts";
import { applyVolumeMountGroup } from "./mount-group";
import { secondTargetProblem } from "./single-writer";
import { findVolume, nodeCapability, requireDeliverable, type NodeVolume } from "./staged-volume";

export const nodePublishVolume = defineRpc<NodePublishVolumeRequest, NodePublishVolumeResponse>({
  // An inline volume is also locked under its store ID.
  lockKeys: (req, driver) => nodeLockKeys(driver, req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const targetPath = checkPath(req.targetPath, "target_path");
    const ref = volumeRef(volumeId);
    if (ref.backend === "nfs") {
      const cap = toCapability(req.volumeCapability, "volume_capability");
      const publishContext = checkMap(req.publishContext, "publish_context");
      const volumeContext = checkMap(req.volumeContext, "volume_context");
      checkMap(req.secrets, "secrets");
      if (!req.stagingTargetPath) throw failedPrecondition("staging_target_path is required: this driver stages volumes (STAGE_UNSTAGE_VOLUME)");
      const stagingPath = checkPath(req.stagingTargetPath, "staging_target_path");
      const vol = await findSharedVolume(driver, volumeId, ref.id, volumeContext);
      const attachment = checkAttachment(driver, volumeId, publishContext);
      await publishShared(driver, vol, { stagingPath, targetPath, cap, readonly: req.readonly === true, forcedReadOnly: attachment.readonly });
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
        await publishAt(driver, { vol, source: vol.dataDir, targetPath, cap, flags, readonly, forcedReadOnly: false });
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
    const stagingPath = checkPath(req.stagingTargetPath, "staging_target_path");
    const vol = await findVolume(driver, volumeId);
    const attachment = checkAttachment(driver, volumeId, publishContext);
    requireDeliverable(driver, vol, cap);
    const staged = nodeLayout(vol.layout).stagedPath(stagingPath);
    if (!volumeMountAt(vol.mounts, staged)) {
      throw failedPrecondition(`volume ${volumeId} is not staged at ${stagingPath}; call NodeStageVolume first`);
    }
    await publishAt(driver, { vol, source: staged, targetPath, cap, flags, readonly, forcedReadOnly: attachment.readonly });
    return {};
  },
});

interface Publish {
  vol: NodeVolume;
  /** What is bound at the target: the staging path, or an inline volume's directory. */
  source: string;
  targetPath: string;
  cap: Capability;
  flags: BindFlags;
  readonly: boolean;
  /** A read-only attachment: the mount is read-only whatever was asked. */
  forcedReadOnly: boolean;
}

async function publishAt(driver: Driver, p: Publish): Promise<void> {
  const { vol, source, targetPath, cap, readonly } = p;
  const volumeId = vol.record.volumeId;
  const layout = nodeLayout(vol.layout);
  const { entries, mounts } = vol.mounts;
  const kernelReadOnly = readonly || p.forcedReadOnly || (p.flags.bits & MS.RDONLY) !== 0;
  const fileSystem = vol.layout !== "block";

  const existing = volumeMountAt(vol.mounts, targetPath);
  if (existing) {
    const rec = driver.nodeRecords.get("publish", targetPath);
    const same = isReadOnly(existing) === kernelReadOnly && (!rec || (rec.readonly === readonly && sameCapability(rec.capability, cap)));
    if (!same) throw alreadyExists(`volume ${volumeId} is already published at ${targetPath} with a different capability or readonly flag`);
    if (fileSystem) applyVolumeMountGroup(cap, source, kernelReadOnly); // finish what a crash may have cut short
    return;
  }
  const occupant = mountAt(entries, targetPath);
  if (occupant && isStaleDeviceBind(entries, occupant)) await unmountAll(targetPath);
  else if (occupant) throw alreadyExists(`something else is already mounted at ${targetPath}`);

  const others = mounts.filter((m) => m.mountPoint !== source && m.mountPoint !== targetPath).map((m) => m.mountPoint);
  const problem = secondTargetProblem(driver, vol.record, cap, others);
  if (problem) throw failedPrecondition(problem);

  await layout.prepareTarget(targetPath);
  driver.nodeRecords.put("publish", { volumeId, path: targetPath, capability: cap, readonly });
  if (fileSystem) applyVolumeMountGroup(cap, source, kernelReadOnly);
  await layout.publish(vol, source, targetPath, readOnlyBits(kernelReadOnly, p.flags.bits), kernelReadOnly);
}
