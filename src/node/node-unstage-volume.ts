/**
 * NodeUnstageVolume: undo NodeStageVolume.
 *
 * Unmounts the volume's mount at the staging path — a bound directory or
 * an image's file system, whose loop device then detaches itself — or, for
 * a volume its backend stages under the path (a block volume's device file,
 * <staging path>/block), that, letting its loop device go, and removes the
 * file, and lets go of any of the volume's loop devices that nothing binds
 * any more (a crash between an unbind and its detach leaves one: the
 * retry finds the staging path clean, and the device is let go then).
 * The CO created the staging directory, so it is left in place. Unstaging
 * something not staged is success: the CO may be retrying a call whose
 * reply it never saw.
 *
 * As for NodeUnpublishVolume, only the volume's own mounts are touched
 * (volume-owner.ts), only inside the kubelet directory (node-path.ts); a
 * volume this node does not know is NOT_FOUND when anything is mounted
 * there, and nothing is unmounted for it.
 */
import type { NodeUnstageVolumeRequest, NodeUnstageVolumeResponse } from "../gen/csi";
import { notFound } from "../csi/errors";
import { checkToken } from "../csi/validate";
import { volumeKey } from "../controller/volume-view";
import { defineRpc } from "../server/rpc";
import { childPath, nodePath, placeKey, removeWhatWasMade } from "./node-path";
import { mountedAt, mountOwner, releaseIdleDevices, unmountOwned } from "./volume-owner";

export const nodeUnstageVolume = defineRpc<NodeUnstageVolumeRequest, NodeUnstageVolumeResponse>({
  lockKeys: (req) => [...volumeKey(req.volumeId), ...placeKey(req.stagingTargetPath)],

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const staging = nodePath(driver, req.stagingTargetPath, "staging_target_path");
    const owner = await mountOwner(driver, volumeId);
    if (!owner) {
      if (!(await mountedAt(staging))) return {};
      throw notFound(`volume ${volumeId} does not exist on this node; what is mounted at ${staging.given} was left as it is`);
    }
    // A mount at the staging path itself is the volume (or something else,
    // refused: unmountOwned throws). Only when there was none may a name
    // under it be looked at: otherwise that name is inside the volume, and
    // belongs to its user.
    const unmounted = await unmountOwned(staging, owner);
    if (!unmounted && owner.stagedChild) {
      const child = childPath(staging, owner.stagedChild);
      await unmountOwned(child, owner);
      await removeWhatWasMade(child, "file", volumeId);
    }
    // A block volume's device a crash left attached, bound nowhere (a retry after one finds the path clean).
    releaseIdleDevices(owner);
    driver.nodeRecords.remove("stage", staging.real);
    return {};
  },
});
