/**
 * NodeExpandVolume for hostPath volumes: where on the node a volume grows.
 *
 * The request names volume_path, a place where the volume is staged or
 * published, and (the kubelet always sends it) staging_target_path. A
 * file system grows online through any mount of it — an ioctl on its
 * root asks the kernel, which grows the one file system every mount
 * shows — but only through a read-write one: a pod that mounts the
 * volume read-only gets a read-only bind, and the kernel refuses to grow
 * anything through that (EROFS). So the file system grows through a
 * read-write mount of it, proven the volume's: volume_path's own, else
 * the staging path's, else any other in the kubelet directory.
 *
 * A volume staged from a read-only attachment is mounted read-only
 * everywhere; its file system cannot grow until it is staged read-write,
 * which grows it (layouts/image.ts). The answer is FAILED_PRECONDITION,
 * the spec's "volume in use" — the kubelet then stops expanding it online
 * and leaves the growth to the next stage — given before anything grows,
 * and only when there is something to grow. A block volume has no file
 * system: its loop devices, read-only ones too, are told the new size.
 */
import { unsupportedReason } from "../../csi/capabilities";
import { failedPrecondition, invalidArgument, notFound, outOfRange } from "../../csi/errors";
import { isReadOnly } from "../../mount/bind";
import type { MountEntry } from "../../mount/mountinfo";
import { volumeMountAt } from "../../mount/volume-mounts";
import type { Driver } from "../../server/driver";
import { childPath, insideKubeletDir, type NodePath } from "../../node/node-path";
import type { ExpandRequest } from "../backend";
import { growHostPathVolume } from "./grow";
import { nodeLayout, type ExpandAt } from "./layouts";
import { STAGED_DEVICE } from "./layouts/block";
import { findVolume, type NodeVolume } from "./node-volume";
import { hostPathStore } from "./store";

/** Grow what the node holds of the volume to the size asked (or its record's); the volume's size. */
export async function expandHostPathVolume(driver: Driver, req: ExpandRequest): Promise<number> {
  let vol = await findVolume(driver, req.volumeId);
  if (req.cap) {
    const why = unsupportedReason(req.cap, hostPathStore(driver).profileOf(vol.record));
    if (why) throw invalidArgument(`volume ${req.volumeId}: ${why}`);
  }
  if (req.range.limit > 0 && req.range.limit < vol.record.capacityBytes) {
    throw outOfRange(`volume ${req.volumeId} has ${vol.record.capacityBytes} bytes and volumes cannot shrink`);
  }
  const mount = volumeMountAt(vol.mounts, req.volumePath) ?? stagedDevice(vol, req.staging);
  if (!mount) throw notFound(`volume ${req.volumeId} is not staged or published at ${req.volumePath}`);
  const layout = nodeLayout(vol.layout);
  const at: ExpandAt = { volumePath: req.volumePath, mount, writable: writableMount(driver, vol, mount, req.staging) };
  // Refused before anything grows, so that a refusal leaves the volume as it was.
  const why = layout.cannotExpand?.(vol, at, req.range.required);
  if (why) throw failedPrecondition(why);
  // A controller running apart from the nodes holds no node-local volume: it answered the
  // resizer from the request, and the volume grows here, on its own disk (grow.ts).
  if (req.range.required > vol.record.capacityBytes) vol = { ...vol, record: await growHostPathVolume(driver, vol.record, req.range) };
  await layout.expand(driver, vol, at);
  return vol.record.capacityBytes;
}

/**
 * A raw block volume's device where it is staged (<staging>/block). The kubelet sends
 * NodeExpandVolume for a raw block volume the device path it keeps for the volume: the
 * target of the pod it last mapped the device for, which it keeps once that pod is gone
 * (operation_generator.go: GenerateMapVolumeFunc, GenerateExpandInUseVolumeFunc). Growing
 * the volume does not depend on where its device is bound — its loop devices are told the
 * new size — so the staged device, proved the volume's, stands for a path that no longer
 * shows it.
 */
function stagedDevice(vol: NodeVolume, staging: NodePath | undefined): MountEntry | undefined {
  if (vol.layout !== "block" || !staging) return undefined;
  return volumeMountAt(vol.mounts, childPath(staging, STAGED_DEVICE).real);
}

/**
 * A read-write mount of the file system `mount` shows, proven the volume's (the mount
 * table, as for `mount` itself): `mount` if it is one, else the one at the staging path,
 * else the first other one in the kubelet directory — never a mount elsewhere on the node,
 * where the driver has no business. Undefined when every mount of it is read-only.
 */
function writableMount(driver: Driver, vol: NodeVolume, mount: MountEntry, staging: NodePath | undefined): MountEntry | undefined {
  const writable = (m: MountEntry | undefined) => m !== undefined && m.device === mount.device && !isReadOnly(m);
  if (writable(mount)) return mount;
  const staged = staging && volumeMountAt(vol.mounts, staging.real);
  if (writable(staged)) return staged;
  return vol.mounts.mounts.find((m) => writable(m) && insideKubeletDir(driver, m.mountPoint));
}
