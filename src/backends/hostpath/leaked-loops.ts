/**
 * Start-up: the loop devices a crash left holding volumes' images, let go.
 *
 * A driver killed between a block volume's attach and its bind, or its
 * unbind and its detach, leaves the device attached and bound nowhere
 * (src/mount/idle-loops.ts). The volume's next stage, unstage, unpublish or
 * delete lets it go; a volume that never gets another call would keep it —
 * and its image's space, even once the file is removed — until the node
 * reboots. So each start, before the driver answers any call (no stage of
 * its own is between its attach and its bind then), looks once at every
 * attached loop device no mount uses: one whose file is on data/'s file
 * system sends it to the volume records, and is let go when its file
 * (LOOP_GET_STATUS64: lo_device, lo_inode) is the image a block or image
 * volume's record names (volume-dir.ts: imageOfRecord), proven again on
 * the descriptor it detaches as. Nothing else is touched: other drivers'
 * and the kubelet's loop devices, a file at a volume's name that is not
 * its recorded image, or a volume whose record has no identity (an old
 * one: its image is known only by name). Records are read only when some
 * device is on data/'s file system, so a start costs one look per attached
 * loop device, and one read per volume only then.
 */
import { lstatSync } from "node:fs";
import * as path from "node:path";
import { idleLoopBackings, releaseIdleLoopsOf } from "../../mount/idle-loops";
import { kernelDev } from "../../mount/loop";
import { layoutOf } from "../../storage/volume-record";
import type { HostPathStore } from "./store";
import { imageOfRecord } from "./volume-dir";

/** A loop device let go at start-up, and the volume whose image it held. */
export interface LeakedLoop {
  volumeId: string;
  device: string;
}

/** Detach the attached loop devices no mount uses whose file is a block or image volume's recorded image (see above). */
export async function releaseLeakedLoops(store: HostPathStore): Promise<LeakedLoop[]> {
  const data = lstatSync(path.join(store.root, "data"), { bigint: true, throwIfNoEntry: false });
  if (!data?.isDirectory()) return [];
  const dev = kernelDev(data.dev);
  const candidates = idleLoopBackings().filter((c) => c.backing.dev === dev);
  if (candidates.length === 0) return [];
  // Which volume's recorded image each candidate's inode is: asked only of the records that name one of them.
  const inodes = new Set(candidates.map((c) => String(c.backing.ino)));
  const owners = new Map<string, string>(); // inode → volume ID
  for (const id of store.page("", store.count).ids) {
    const record = await store.get(id).catch(() => undefined);
    const parts = record?.dataIdentity;
    if (!record || !parts || layoutOf(record) === "dir" || !inodes.has(parts.ino)) continue;
    const image = imageOfRecord(store.dataDir(id), parts);
    if (image && "ino" in image && kernelDev(image.dev) === dev) owners.set(String(image.ino), id);
  }
  const released = releaseIdleLoopsOf(
    candidates.map((c) => c.n),
    (b) => (b.dev === dev ? owners.get(String(b.ino)) : undefined),
  );
  return released.map((r) => ({ volumeId: r.owner, device: r.loop.path }));
}
