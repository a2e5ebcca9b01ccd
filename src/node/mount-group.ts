/**
 * VOLUME_MOUNT_GROUP: a pod's fsGroup, applied by the driver.
 *
 * When the node advertises VOLUME_MOUNT_GROUP, the kubelet stops changing
 * file ownership itself and passes the pod's fsGroup as
 * volume_mount_group in NodeStageVolume and NodePublishVolume. A disk
 * driver would pass it as a mount option (gid=…); a bind mount has none, so
 * we do what the kubelet would: make the volume's root group-owned by that
 * group, group-writable and set-group-ID, so files and directories created
 * inside belong to the group too (volume-root.ts). Contents already there
 * keep their owners — walking a tree that a pod can change under us is how
 * symlink races happen. A read-only mount is left alone, as the kubelet
 * does.
 */
import type { Capability } from "../csi/capabilities";
import { applyMountGroup } from "../storage/volume-root";

export function applyVolumeMountGroup(cap: Capability, root: string, readonly: boolean): void {
  if (cap.accessType !== "mount" || cap.volumeMountGroup === "" || readonly) return;
  applyMountGroup(root, Number(cap.volumeMountGroup));
}
