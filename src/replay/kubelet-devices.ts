/**
 * What the kubelet does itself with a raw block volume's device, between
 * the driver's calls, played on the replay's "host".
 *
 * NodePublishVolume puts the device at the pod's target path
 * (volumeDevices/publish/<pv>/<pod uid>). The kubelet then maps it
 * (MapBlockVolume, pkg/volume/util/util.go): it binds that device file at
 * volumeDevices/<pv>/dev/<pod uid>, the path it later asks
 * NodeGetVolumeStats about (csi_plugin.go gives the block mapper's metrics
 * that path), links it into the pod's volumeDevices directory, and
 * attaches a loop device of its own to the bind (AttachFileDevice,
 * volumepathhandler: `losetup -f`), which keeps the device open so that
 * it cannot silently go and another take its name while the pod runs.
 * Before NodeUnpublishVolume it unmaps it (UnmapBlockVolume): it detaches
 * that loop device, found by its backing file (`losetup -d`), then
 * unmounts the bind and removes its file. The link into the pod matters to
 * no CSI call and is not played; the loop device is, since the driver must
 * unpublish, unstage and grow the volume while another pod's loop device
 * holds it open, and must leave those loop devices alone.
 */
import { spawnSync } from "node:child_process";
import { closeSync, constants as fsc, openSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { bindMount, unmount } from "../mount/syscalls";

/**
 * Bind the device published at `source` at `target`, a file made for it (its directory exists), and attach a loop
 * device to that bind; returns the loop device (/dev/loopN).
 */
export function mapDevice(source: string, target: string): string {
  closeSync(openSync(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600));
  try {
    bindMount(source, target);
  } catch (err) {
    unlinkSync(target);
    throw err;
  }
  const attached = spawnSync("losetup", ["-f", "--show", target], { encoding: "utf8" });
  const loop = attached.stdout?.trim() ?? "";
  if (attached.status !== 0 || !/^\/dev\/loop\d+$/.test(loop)) {
    unmount(target);
    unlinkSync(target);
    throw new Error(`losetup -f ${target} failed: ${(attached.stderr ?? "").trim() || attached.error?.message || `exit ${String(attached.status)}`}`);
  }
  return loop;
}

/**
 * Undo mapDevice: detach the loop device whose backing file is `target`, then unmount the bind at `target` and remove
 * the file; returns the loop device detached. Its loop device gone before that means something other than the kubelet
 * detached it: an error, after which the bind is still undone.
 */
export function unmapDevice(target: string): string {
  const loop = loopBackedBy(target);
  if (loop) {
    const detached = spawnSync("losetup", ["-d", loop], { encoding: "utf8" });
    if (detached.status !== 0) throw new Error(`losetup -d ${loop} failed: ${(detached.stderr ?? "").trim() || detached.error?.message}`);
  }
  unmount(target);
  unlinkSync(target);
  if (!loop) throw new Error(`no loop device is attached to ${target} any more: the kubelet's own loop device was detached by someone else`);
  return loop;
}

/** The loop device whose backing file is `file`, as sysfs names it (the path the attaching process saw: this one). */
export function loopBackedBy(file: string): string | undefined {
  return attachedLoops().find(([, backing]) => backing === file)?.[0];
}

/** Loop devices whose backing file sysfs names under `dir`: the kubelet's, still attached ("/dev/loopN path"). */
export function loopsUnder(dir: string): string[] {
  return attachedLoops()
    .filter(([, backing]) => backing.startsWith(dir + "/"))
    .map(([loop, backing]) => `${loop} ${backing}`);
}

function attachedLoops(): [string, string][] {
  const out: [string, string][] = [];
  for (const name of readdirSync("/sys/block").filter((n) => /^loop\d+$/.test(n))) {
    try {
      out.push([`/dev/${name}`, readFileSync(`/sys/block/${name}/loop/backing_file`, "utf8").trim()]);
    } catch {
      // not attached
    }
  }
  return out;
}
