/**
 * Where the kubelet asks a driver to put things, as Kubernetes lays it
 * out under the kubelet directory (/var/lib/kubelet):
 *
 *   plugins/kubernetes.io/csi/<driver>/<sha256(volume handle)>/globalmount
 *       a volume's staging path on the node, one per volume, shared by
 *       every pod on the node that uses it
 *   pods/<pod uid>/volumes/kubernetes.io~csi/<pv name>/mount
 *       one pod's target path; the kubelet makes <pv name>, the driver
 *       makes `mount`
 *   plugins/kubernetes.io/csi/volumeDevices/staging/<pv name>
 *   plugins/kubernetes.io/csi/volumeDevices/publish/<pv name>/<pod uid>
 *       the same for a raw block volume: the target is a file the driver
 *       makes and binds the device onto
 *   plugins/kubernetes.io/csi/volumeDevices/<pv name>/dev/<pod uid>
 *       where the kubelet binds that device for itself once it is
 *       published (kubelet-devices.ts), and the path it asks
 *       NodeGetVolumeStats about for a raw block volume
 *
 * An inline (ephemeral) volume has no staging path; its ID is made by the
 * kubelet: "csi-" + sha256(pod uid + the volume's name in the pod).
 * UIDs here are made from names, so a replay is the same every time.
 */
import { createHash } from "node:crypto";
import * as path from "node:path";

export function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** A UID in Kubernetes' format, made from `seed`. */
export function uidFor(seed: string): string {
  const h = sha256(seed);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function stagingPath(kubeletDir: string, driver: string, handleHash: string): string {
  return path.join(kubeletDir, "plugins/kubernetes.io/csi", driver, handleHash, "globalmount");
}

export function targetPath(kubeletDir: string, podUid: string, volume: string): string {
  return path.join(kubeletDir, "pods", podUid, "volumes/kubernetes.io~csi", volume, "mount");
}

export function blockStagingPath(kubeletDir: string, pv: string): string {
  return path.join(kubeletDir, "plugins/kubernetes.io/csi/volumeDevices/staging", pv);
}

export function blockTargetPath(kubeletDir: string, pv: string, podUid: string): string {
  return path.join(kubeletDir, "plugins/kubernetes.io/csi/volumeDevices/publish", pv, podUid);
}

export function ephemeralVolumeId(podUid: string, volumeName: string): string {
  return `csi-${sha256(podUid + volumeName)}`;
}

/** A raw block volume's own directory: the kubelet's binds of its device, under dev/. */
export function blockVolumeDir(kubeletDir: string, pv: string): string {
  return path.join(kubeletDir, "plugins/kubernetes.io/csi/volumeDevices", pv);
}

export function blockDeviceMapPath(kubeletDir: string, pv: string, podUid: string): string {
  return path.join(blockVolumeDir(kubeletDir, pv), "dev", podUid);
}
