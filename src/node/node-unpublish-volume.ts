/**
 * NodeUnpublishVolume: take a volume away from one pod.
 *
 * Unmounts the volume's mount at the target and removes the directory (or,
 * for a block volume, the device file) NodePublishVolume created there —
 * the spec makes that the plugin's job. A read-only block target's own
 * loop device goes with it. Like every undo call it is idempotent: a target
 * with nothing mounted and nothing left is success. An ephemeral inline
 * volume is deleted with its last target (ephemeral.ts).
 *
 * Only the volume's own mount is touched (volume-owner.ts), only inside the
 * kubelet directory (node-path.ts), and only an empty directory or empty
 * device file is removed: another mount at the target, or a target holding
 * data, is FAILED_PRECONDITION and stays as it is. A volume this node does
 * not know is NOT_FOUND — unless nothing is at the target at all, which is
 * what a retry finds after an earlier call removed the target and, with
 * it, an inline volume.
 */
import type { NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse } from "../gen/csi";
import { notFound } from "../csi/errors";
import { checkToken } from "../csi/validate";
import { mountTable } from "../mount/mountinfo";
import { defineRpc } from "../server/rpc";
import { nodeLockKeys, storeVolumeId } from "./ephemeral";
import { describeOccupant, nodePath, occupant, placeKey, removeWhatWasMade, withAnchor } from "./node-path";
import { mountOwner, releaseIdleDevices, unmountOwned } from "./volume-owner";

export const nodeUnpublishVolume = defineRpc<NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse>({
  lockKeys: (req, driver) => [...nodeLockKeys(driver, req.volumeId), ...placeKey(req.targetPath)],

  async handle(req, { driver, log }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const target = nodePath(driver, req.targetPath, "target_path");
    const owner = await mountOwner(driver, storeVolumeId(driver, volumeId));
    if (!owner) {
      const mounted = mountTable().at(target.real);
      const there = await withAnchor(target, (a) => occupant(a));
      if (!mounted && (there === undefined || there.kind === "absent")) return {};
      throw notFound(`volume ${volumeId} does not exist on this node; ${target.given} (${mounted ? "a mount point" : describeOccupant(there!)}) was left as it is`);
    }
    await unmountOwned(target, owner);
    releaseIdleDevices(owner); // a read-only block target's own device, if a crash left it bound nowhere
    await removeWhatWasMade(target, owner.placeKind, volumeId);
    driver.nodeRecords.remove("publish", target.real);
    if (await driver.backends.ephemeral?.removeIfUnused(driver, volumeId)) log.debug("removed the inline volume with its last target");
    return {};
  },
});
