/**
 * NodePublishVolume: put a staged volume where one pod will see it.
 *
 * The staging path is bound at the pod's target path; `readonly` and the
 * capability's mount flags become per-mount flags of that bind, so one
 * volume can be read-write for one pod and read-only for another. (A
 * block volume's device is bound onto a target file instead, and a
 * read-only one gets a read-only device: src/node/layouts/block.ts.)
 *
 * Repeating the call with the same arguments is a no-op; different
 * arguments on the same target are ALREADY_EXISTS. Access modes that allow
 * one workload (SINGLE_NODE_WRITER, SINGLE_NODE_READER_ONLY,
 * SINGLE_NODE_SINGLE_WRITER = Kubernetes' ReadWriteOncePod) refuse a
 * second target with FAILED_PRECONDITION, as the spec's table says.
 */
import type { NodePublishVolumeRequest, NodePublishVolumeResponse } from "../gen/csi";
import { AccessMode, modeName, sameCapability } from "../csi/capabilities";
import { alreadyExists, failedPrecondition } from "../csi/errors";
import { checkMap, checkPath, checkToken } from "../csi/validate";
import { isReadOnly, readOnlyBits, unmountAll } from "../mount/bind";
import { mountAt } from "../mount/mountinfo";
import { MS } from "../mount/options";
import { isStaleDeviceBind, volumeMountAt } from "../mount/volume-mounts";
import { volumeKey } from "../controller/volume-view";
import { defineRpc } from "../server/rpc";
import { nodeLayout } from "./layouts";
import { findVolume, nodeCapability, requireDeliverable } from "./staged-volume";

const ONE_TARGET: ReadonlySet<AccessMode> = new Set([
  AccessMode.SINGLE_NODE_WRITER,
  AccessMode.SINGLE_NODE_READER_ONLY,
  AccessMode.SINGLE_NODE_SINGLE_WRITER,
]);

export const nodePublishVolume = defineRpc<NodePublishVolumeRequest, NodePublishVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const targetPath = checkPath(req.targetPath, "target_path");
    const { cap, flags } = nodeCapability(driver, req.volumeCapability);
    if (!req.stagingTargetPath) {
      throw failedPrecondition("staging_target_path is required: this driver stages volumes (STAGE_UNSTAGE_VOLUME)");
    }
    const stagingPath = checkPath(req.stagingTargetPath, "staging_target_path");
    checkMap(req.publishContext, "publish_context");
    checkMap(req.volumeContext, "volume_context");
    checkMap(req.secrets, "secrets");
    const readonly = req.readonly === true;

    const vol = await findVolume(driver, volumeId);
    requireDeliverable(driver, vol, cap);
    const layout = nodeLayout(vol.layout);
    const staged = layout.stagedPath(stagingPath);
    const { entries, mounts } = vol.mounts;
    if (!volumeMountAt(vol.mounts, staged)) {
      throw failedPrecondition(`volume ${volumeId} is not staged at ${stagingPath}; call NodeStageVolume first`);
    }

    const existing = volumeMountAt(vol.mounts, targetPath);
    if (existing) {
      const rec = driver.nodeRecords.get("publish", targetPath);
      const kernelReadOnly = readonly || (flags.bits & MS.RDONLY) !== 0;
      const same = isReadOnly(existing) === kernelReadOnly && (!rec || (rec.readonly === readonly && sameCapability(rec.capability, cap)));
      if (!same) throw alreadyExists(`volume ${volumeId} is already published at ${targetPath} with a different capability or readonly flag`);
      return {};
    }
    const occupant = mountAt(entries, targetPath);
    if (occupant && isStaleDeviceBind(entries, occupant)) await unmountAll(targetPath);
    else if (occupant) throw alreadyExists(`something else is already mounted at ${targetPath}`);

    const others = mounts.filter((m) => m.mountPoint !== staged && m.mountPoint !== targetPath);
    if (others.length > 0 && ONE_TARGET.has(cap.accessMode)) {
      throw failedPrecondition(
        `volume ${volumeId} is already published at ${others.map((m) => m.mountPoint).join(", ")} and its access mode ` +
          `${modeName(cap.accessMode)} allows one workload only`,
      );
    }

    await layout.prepareTarget(targetPath);
    driver.nodeRecords.put("publish", { volumeId, path: targetPath, capability: cap, readonly });
    await layout.publish(vol, staged, targetPath, readOnlyBits(readonly, flags.bits), readonly);
    return {};
  },
});
