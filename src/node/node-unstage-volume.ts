/**
 * NodeUnstageVolume: undo NodeStageVolume.
 *
 * Unmounts whatever is mounted at the staging path — a bound directory or
 * an image's file system, whose loop device then detaches itself — or, for
 * a block volume, the device bound onto <staging path>/block, letting its
 * loop device go (src/node/layouts/block.ts). The CO created the staging
 * directory, so it is left in place. Unstaging something not staged is
 * success: the CO may be retrying a call whose reply it never saw.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import type { NodeUnstageVolumeRequest, NodeUnstageVolumeResponse } from "../gen/csi";
import { checkPath, checkToken } from "../csi/validate";
import { unmountAll } from "../mount/bind";
import { mountAt, readMountInfo } from "../mount/mountinfo";
import { volumeKey } from "../controller/volume-view";
import { HostPathStore } from "../storage/hostpath-store";
import { volumeRef } from "../storage/volumes";
import { defineRpc } from "../server/rpc";
import { STAGED_DEVICE, unmountReleasingLoop } from "./layouts/block";

export const nodeUnstageVolume = defineRpc<NodeUnstageVolumeRequest, NodeUnstageVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const stagingPath = checkPath(req.stagingTargetPath, "staging_target_path");
    // A mount at the staging path itself is a directory or image volume.
    // Only when there is none may <staging>/block be looked at: otherwise
    // that name is inside the volume, and belongs to its user.
    if (mountAt(readMountInfo(), stagingPath)) {
      // A shared volume is detached (MNT_DETACH): unmounting an NFS mount
      // whose server is gone would otherwise wait for it.
      await unmountAll(stagingPath, { detach: volumeRef(volumeId).backend === "nfs" });
    } else {
      const device = path.join(stagingPath, STAGED_DEVICE);
      await unmountReleasingLoop(device, HostPathStore.isVolumeId(volumeId) ? driver.hostpath.dataDir(volumeId) : undefined);
      await removeFile(device);
    }
    driver.nodeRecords.remove("stage", stagingPath);
    return {};
  },
});

/** Remove the device placeholder if it is there (a regular file; anything else is left alone). */
async function removeFile(p: string): Promise<void> {
  try {
    if ((await fsp.lstat(p)).isFile()) await fsp.unlink(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
