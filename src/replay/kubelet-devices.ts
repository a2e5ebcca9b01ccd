/**
 * What the kubelet does itself with a raw block volume's device, between
 * the driver's calls, played on the replay's "host".
 *
 * NodePublishVolume puts the device at the pod's target path
 * (volumeDevices/publish/<pv>/<pod uid>). The kubelet then maps it
 * (MapBlockVolume, pkg/volume/util/util.go): it binds that device file at
 * volumeDevices/<pv>/dev/<pod uid>, the path it later asks
 * NodeGetVolumeStats about (csi_plugin.go gives the block mapper's metrics
 * that path), and links it into the pod's volumeDevices directory. Before
 * NodeUnpublishVolume it unmaps it (UnmapBlockVolume): the bind is
 * unmounted and its file removed. The link into the pod, and the loop
 * device the kubelet attaches to the device file to hold it open, matter
 * to no CSI call and are not played.
 */
import { closeSync, constants as fsc, openSync, unlinkSync } from "node:fs";
import { bindMount, unmount } from "../mount/syscalls";

/** Bind the device published at `source` at `target`, a file made for it (its directory exists). */
export function mapDevice(source: string, target: string): void {
  closeSync(openSync(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600));
  try {
    bindMount(source, target);
  } catch (err) {
    unlinkSync(target);
    throw err;
  }
}

/** Undo mapDevice: unmount the bind at `target`, then remove the file. */
export function unmapDevice(target: string): void {
  unmount(target);
  unlinkSync(target);
}
