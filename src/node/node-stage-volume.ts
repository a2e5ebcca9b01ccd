/**
 * NodeStageVolume: make a volume available on this node, once.
 *
 * Staging is the per-node half of mounting. For a disk it is where the
 * device gets formatted and mounted; every pod on the node then gets a
 * cheap bind mount of that one global mount. Here it depends on the
 * volume's layout (src/node/layouts): a directory is bound at the staging
 * path, an image's file system is loop-mounted there, a block volume's
 * loop device is bound onto a file inside it. Calling it again for the
 * same volume and path is a no-op; a different volume or capability at
 * that path is ALREADY_EXISTS. With
 * attach on, the volume must be attached to this node, and a read-only
 * attachment is staged read-only (attachment-check.ts); a pod's fsGroup
 * (volume_mount_group) is applied to the volume's root (mount-group.ts).
 * A shared (nfs) volume is mounted from its share instead
 * (shared-volume.ts): `mount -t nfs`, or a bind of a local share.
 */
import type { NodeStageVolumeRequest, NodeStageVolumeResponse } from "../gen/csi";
import { sameCapability, toCapability } from "../csi/capabilities";
import { volumeRef } from "../storage/volumes";
import { findSharedVolume, stageShared } from "./shared-volume";
import { alreadyExists } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { mountAt } from "../mount/mountinfo";
import { isStaleDeviceBind, volumeMountAt } from "../mount/volume-mounts";
import { volumeKey } from "../controller/volume-view";
import { defineRpc } from "../server/rpc";
import { applyMutableParameters } from "../controller/mutable-parameters";
import { checkAttachment } from "./attachment-check";
import { nodeLayout } from "./layouts";
import { STAGED_DEVICE } from "./layouts/block";
import { applyVolumeMountGroup } from "./mount-group";
import { childPath, describeMount, nodePath, withAnchor, withMountTarget } from "./node-path";
import { findVolume, nodeCapability, requireDeliverable } from "./staged-volume";
import { mountOwner, unmountOwned } from "./volume-owner";

export const nodeStageVolume = defineRpc<NodeStageVolumeRequest, NodeStageVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const staging = nodePath(driver, req.stagingTargetPath, "staging_target_path");
    const ref = volumeRef(volumeId);
    if (ref.backend === "nfs") {
      const cap = toCapability(req.volumeCapability, "volume_capability");
      const publishContext = checkMap(req.publishContext, "publish_context");
      const volumeContext = checkMap(req.volumeContext, "volume_context");
      checkMap(req.secrets, "secrets");
      const vol = await findSharedVolume(driver, volumeId, ref.id, volumeContext);
      const { readonly } = checkAttachment(driver, volumeId, publishContext);
      await stageShared(driver, vol, staging, cap, readonly);
      return {};
    }
    const { cap } = nodeCapability(driver, req.volumeCapability);
    const publishContext = checkMap(req.publishContext, "publish_context");
    checkMap(req.volumeContext, "volume_context");
    checkMap(req.secrets, "secrets");

    const vol = await findVolume(driver, volumeId);
    const { readonly } = checkAttachment(driver, volumeId, publishContext);
    requireDeliverable(driver, vol, cap);
    const layout = nodeLayout(vol.layout);
    const staged = layout.stagedChild ? childPath(staging, layout.stagedChild) : staging;
    const fileSystem = vol.layout !== "block";
    if (volumeMountAt(vol.mounts, staged.real)) {
      const rec = driver.nodeRecords.get("stage", staging.real);
      if (rec && (rec.volumeId !== volumeId || !sameCapability(rec.capability, cap))) {
        throw alreadyExists(`volume ${volumeId} is already staged at ${staging.given} with a different volume_capability`);
      }
      if (fileSystem) await withAnchor(staging, (a) => applyVolumeMountGroup(cap, a.at, readonly)); // finish what a crash may have cut short
      return {};
    }
    // A block volume staged here lives on the file under it; nothing may hide it.
    const { entries } = vol.mounts;
    for (const p of staged === staging ? [staging] : [staging, staged]) {
      const m = mountAt(entries, p.real);
      if (m && isStaleDeviceBind(entries, m) && vol.layout === "block") await unmountOwned(p, (await mountOwner(driver, volumeId))!);
      else if (m) throw alreadyExists(`something else is already mounted at ${p.given}: ${describeMount(m)}`);
    }
    // The staging directory (the CO's to make, made here if it has not), and
    // for a block volume the device file inside it, which only the driver puts there.
    if (staged !== staging) await withMountTarget(staging, "dir", () => undefined, { madeFor: volumeId, allow: (names) => names.length === 1 && names[0] === STAGED_DEVICE });
    // Write the record first: if we crash between the two steps, a record
    // without a mount is ignored, while a mount without a record would
    // lose the capability it was made for.
    driver.nodeRecords.put("stage", { volumeId, path: staging.real, capability: cap, readonly });
    await withMountTarget(staged, layout.placeKind, async (place) => {
      await layout.stage(driver, vol, place, readonly);
      // An image's root lives inside it: its mutable mode is applied where it is mounted.
      if (vol.layout === "image" && !readonly) applyMutableParameters(driver, vol.record, vol.record.mutableParameters);
      if (fileSystem) applyVolumeMountGroup(cap, place.at, readonly);
    }, { madeFor: volumeId });
    return {};
  },
});
