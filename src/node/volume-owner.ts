/**
 * Undoing a stage or a publish: unmount what this volume has at a place,
 * and nothing else.
 *
 * NodeUnstageVolume and NodeUnpublishVolume are told a volume ID and a
 * path. Whatever is mounted at that path is unmounted only if it is this
 * volume's own mount, recognised the way the kernel shows it and the way it
 * stays recognisable after the driver restarts in another mount namespace
 * (each backend says how, NodeBackend.owner; for the ones we have):
 *
 *   dir     a bind of the volume's data directory: the inode and birth time
 *           its record names, on the root's device (statx); else same device
 *           and same root (path inside that device) in mountinfo, while
 *           data/<id> is that directory
 *   image   the image's file system: a loop device whose backing file has
 *           the image's device and inode numbers (LOOP_GET_STATUS64): those
 *           its record names, wherever the image is now
 *   block   a bind of such a loop device's node (and a bind of a loop node
 *           whose device has been detached since: it refers to nothing)
 *   shared  an NFS mount of exactly server:/share/subDir, or a bind of the
 *           share's directory (same device and root)
 *
 * Anything else mounted there — another volume, a tmpfs, the host's /proc —
 * is left alone and answered FAILED_PRECONDITION naming it. A volume ID the
 * driver cannot resolve owns nothing, so nothing is unmounted for it. Where
 * the backend cannot tell whose a mount is — a shared volume's share gave
 * no answer, and only it could say — the mount is neither unmounted nor
 * called another's: the call answers UNAVAILABLE, and a retry asks again.
 *
 * Whether anything is mounted there is answered without the mount table,
 * whose cost grows with the mounts on the node: one statx(2) at the place
 * says so and, for dir and image volumes, whether it is the volume's
 * (src/mount/mount-root.ts). A mount that statx cannot place — a block
 * volume's bind, a shared volume's, anything foreign — is looked up in the
 * table, and refused or unmounted as above.
 *
 * A proof and an unmount are two calls, and umount2(2) takes a name: what
 * it unmounts is whatever is on top there when it runs. Something mounted
 * on top in between — a stranger's bind, say — would be unmounted in the
 * volume's place. So an unmount acts only on the mount just proven
 * (unmountProven): the kernel's expiry mark (umount2 with MNT_EXPIRE, see
 * expireMount) is put on the mount on top; that this mount is the one
 * statx proved is known without the table when no mount of the namespace
 * changed since the look (mountinfo.ts: watchMountChanges, a poll), and is
 * otherwise proved from the table; a second MNT_EXPIRE unmounts it only if
 * it is still that marked mount. Anything stacked meanwhile is
 * left alone, and named (FAILED_PRECONDITION) by the next look. What the
 * kernel cannot guard this way — a lazy unmount (MNT_DETACH), which the
 * shared volumes use and a mount still in use needs — follows a fresh
 * proof from the table at once.
 */
import { closeSync, lstatSync } from "node:fs";
import { failedPrecondition } from "../csi/errors";
import { backingOf, backingTest, detachOnLastClose, loopDevice, loopNumberOfNode, openLoop, type FileIdentity, type LoopDevice } from "../mount/loop";
import { loopInUse, releaseIdleLoops, type LoopNotes } from "../mount/idle-loops";
import { locate, mountTable, watchMountChanges, type MountChangeWatch, type MountEntry, type Mounts } from "../mount/mountinfo";
import { mountRootAt, type FileNumbers } from "../mount/mount-root";
import { expireMount, markMountExpired, unmountIfMounted } from "../mount/syscalls";
import type { Driver } from "../server/driver";
import { describeMount, withAnchor, type NodePath } from "./node-path";

export interface MountOwner {
  volumeId: string;
  /** Is this mount table entry one of the volume's own mounts? Throws (UNAVAILABLE) when what could tell did not answer. */
  owns(m: MountEntry, table: Mounts): boolean;
  /**
   * Does the root of the mount on top at a place, as statx shows it, prove
   * the mount is the volume's own? true settles it without the mount table;
   * false leaves the question to `owns`. Absent: only the table can tell.
   */
  recognises?(root: FileNumbers): boolean;
  /** Unmount with MNT_DETACH: a shared volume's server may be gone, and must not be waited on. */
  detach: boolean;
  /** Block volumes: the image whose loop device goes with its last bind. */
  image?: FileIdentity;
  /** Block volumes: the loop devices noted as attached to the image, where its idle ones are looked for (src/mount/idle-loops.ts). */
  loopNotes?: LoopNotes;
  /**
   * What NodePublishVolume makes at a target for this volume: a directory, or a device file
   * (block); "either" where the backend cannot tell which (a record that cannot be read).
   */
  placeKind: "dir" | "file" | "either";
  /** Where under the staging path NodeStageVolume put the volume, when not at the path itself (a block volume's device file). */
  stagedChild?: string;
}

/**
 * What the volume owns on this node, or undefined when the driver cannot
 * resolve the ID to a volume it made (or may use): then it owns nothing.
 * How a volume's mounts are recognised is its backend's (NodeBackend.owner).
 */
export async function mountOwner(driver: Driver, volumeId: string): Promise<MountOwner | undefined> {
  return driver.backends.forId(volumeId)?.node.owner(driver, volumeId);
}

/**
 * Unmount every mount of `owner`'s volume stacked at the place, from the
 * top, through the anchored parent (never following a symlink). Stops with
 * FAILED_PRECONDITION at the first mount that is not the volume's (with
 * owns's UNAVAILABLE at one it cannot place). Returns whether anything was
 * unmounted.
 */
export async function unmountOwned(np: NodePath, owner: MountOwner): Promise<boolean> {
  let any = false;
  if (owner.recognises) {
    const quick = await withAnchor(np, (a) => unmountRecognised(np, a.at, owner));
    if (quick === undefined) return false; // the parent is gone: nothing can be mounted there
    if (quick.done) return quick.any;
    any = quick.any;
  }
  for (let i = 0; i < 64; i++) {
    const table = mountTable();
    const top = table.at(np.real);
    if (!top) return any;
    if (!owner.owns(top, table)) {
      const undone = any ? `; the volume's own mount above it was unmounted` : "";
      throw failedPrecondition(`${np.field} ${np.given} has ${describeMount(top)} mounted on it, which is not volume ${owner.volumeId}'s: it was left alone${undone}`);
    }
    // withAnchor's undefined means the parent went away (nothing can be
    // mounted there); unmountOne itself returns nothing, hence the true.
    const done = await withAnchor(np, async (a) => {
      await unmountOne(np, a.at, table, top, owner);
      return true;
    });
    if (done === undefined) return any;
    any = true;
  }
  throw failedPrecondition(`${np.field} ${np.given} still has mounts after 64 unmounts`);
}

/**
 * Unmount from the top at `at` while statx shows each mount is the
 * volume's own. done: nothing is mounted there any more; otherwise what is
 * on top is for the mount table to name (and refuse, or unmount).
 */
async function unmountRecognised(np: NodePath, at: string, owner: MountOwner): Promise<{ any: boolean; done: boolean }> {
  let any = false;
  for (let i = 0; i < 64; i++) {
    // Begun before the look: "nothing changed since" then means the mount on top is still the one statx proved.
    const watch = watchMountChanges();
    try {
      const top = mountRootAt(at);
      if (top.kind === "absent" || top.kind === "not-a-mount") return { any, done: true };
      if (top.kind === "unknown" || !owner.recognises!(top.root)) break;
      const device = `${top.root.dev.major}:${top.root.dev.minor}`;
      await unmountProven(np, at, owner, top.mountId !== undefined ? { id: top.mountId, device, watch } : undefined);
    } finally {
      watch?.close();
    }
    any = true;
  }
  return { any, done: false };
}

/** Is anything mounted at the place? statx where the kernel can say, else the mount table. */
export async function mountedAt(np: NodePath): Promise<boolean> {
  const top = await withAnchor(np, (a) => mountRootAt(a.at));
  if (top === undefined || top.kind === "absent" || top.kind === "not-a-mount") return false;
  return top.kind === "mount" || mountTable().at(np.real) !== undefined;
}

/** One unmount; a block volume's last bind takes its loop device with it. */
async function unmountOne(np: NodePath, at: string, table: Mounts, m: MountEntry, owner: MountOwner): Promise<void> {
  const n = m.device === locate(table, "/dev")?.device ? loopNumberOfNode(m.root) : undefined;
  const lastBind = table.of(m).length === 1;
  if (n !== undefined && lastBind && owner.image) {
    // Holding the device open, ask what it is attached to, unmount, and only then ask it to
    // detach on its last close, and close: a device detached while a bind of its node exists
    // would leave that bind naming whatever file the next attach gives that number. A crash
    // in between leaves the device attached and bound nowhere, for the retry to let go
    // (releaseIdleLoops). One descriptor throughout: a loop device held open is not detached
    // (a detach waits for its last close) and so not attached to another file in between, so
    // the device told to go is the one found to be the volume's.
    const loop = loopDevice(n);
    const fd = openLoopIfThere(loop);
    if (fd !== undefined) {
      try {
        const b = backingOf(fd, loop.path);
        if (b && backingTest(owner.image)(b)) {
          await unmountProven(np, at, owner);
          if (!loopInUse(n)) {
            detachOnLastClose(fd, loop.path);
            owner.loopNotes?.forget(n); // it goes by itself now
          }
          return;
        }
      } finally {
        closeSync(fd);
      }
    }
  }
  await unmountProven(np, at, owner);
}

/**
 * A block volume's loop devices that nothing binds any more (a crash between a stage's
 * attach and its bind, or between an unstage's unmount and its detach, left them
 * attached): let go, once the volume's mounts at a place are undone. Only devices proven
 * attached to the volume's image, among those noted for it (src/mount/idle-loops.ts); anyone
 * else's are not looked at.
 */
export function releaseIdleDevices(owner: MountOwner): void {
  if (owner.image && owner.loopNotes) releaseIdleLoops(owner.image, owner.loopNotes);
}

/** The loop device opened for its ioctls; undefined where its node cannot be opened (then it is not asked, nor told). */
function openLoopIfThere(loop: LoopDevice): number | undefined {
  try {
    return openLoop(loop);
  } catch {
    return undefined;
  }
}

/**
 * Unmount the mount on top at `at` (the place `np`, through its anchored
 * parent) if it is the volume's own, and no other: the mark, the proof, the
 * unmount of the marked mount (module comment). A mount on top that is not
 * the volume's is FAILED_PRECONDITION naming it. The mark is lost when the
 * mount is used meanwhile, and then set again; a mount in use (EBUSY), one
 * whose mark never holds, and an owner that unmounts lazily get
 * MNT_DETACH after a fresh proof, as before: the kernel cannot tie a lazy
 * unmount to one mount.
 */
async function unmountProven(np: NodePath, at: string, owner: MountOwner, proven?: ProvenMount): Promise<void> {
  if (!owner.detach) {
    // "unmounted" at the first call: the mount carried a mark already (the kernel's own
    // automount expiry, or another MNT_EXPIRE caller); ours is cleared before we give up.
    let answer = markMountExpired(at);
    for (let i = 0; i < 8 && answer === "marked"; i++) {
      let ours: boolean;
      try {
        ours = unchangedSinceProof(proven) || provenTop(np, owner, proven);
      } catch (err) {
        lstatSync(at, { throwIfNoEntry: false }); // a path walk to the mount on top clears the mark we left there
        throw err;
      }
      if (!ours) return;
      // Unmounts the marked mount if it is still the one on top, untouched; else marks the
      // one on top now (stacked meanwhile, or the same one used meanwhile), to be proven again.
      answer = await expireMount(at);
    }
    if (answer === "unmounted" || answer === "not-mounted") return;
  }
  if (!unchangedSinceProof(proven) && !provenTop(np, owner, proven)) return;
  await unmountIfMounted(at, { detach: true });
}

/**
 * No mount of the namespace changed since statx proved the mount on top
 * (or since the last time this said otherwise, when the table proved it
 * again): then it is still that one, and the table need not be asked.
 */
function unchangedSinceProof(proven: ProvenMount | undefined): boolean {
  return proven?.watch !== undefined && !proven.watch.changed();
}

/** A mount statx proved the volume's (recognises): its ID, and its device, "major:minor" (an ID an unmount frees may be the next mount's at once). */
interface ProvenMount {
  id: number;
  device: string;
  /** Begun before that statx: whether any mount changed since (mountinfo.ts). */
  watch?: MountChangeWatch;
}

/**
 * Is the mount on top at the place, as the mount table lists it now, the
 * volume's own — the very mount statx proved (`proven`), or one the table
 * shows is the volume's? false when nothing is mounted there;
 * FAILED_PRECONDITION naming it when it is someone else's. (Not statx
 * again: a path walk to the mount would clear its expiry mark.)
 */
function provenTop(np: NodePath, owner: MountOwner, proven?: ProvenMount): boolean {
  const table = mountTable();
  const top = table.at(np.real);
  if (!top) return false;
  if (proven && top.id === proven.id && top.device === proven.device) return true;
  if (!owner.owns(top, table)) {
    throw failedPrecondition(`${np.field} ${np.given} has ${describeMount(top)} mounted on it, which is not volume ${owner.volumeId}'s: it was left alone`);
  }
  return true;
}
