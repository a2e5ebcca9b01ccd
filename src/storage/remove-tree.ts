/**
 * Removing a tree that others may still be changing.
 *
 * What a volume held is its workloads': a process that kept a directory of
 * it open (or, on a share, a pod on another node that still mounts it) can
 * rename in it while the driver removes it. Node's recursive rm walks by
 * path — `lstat a/d`, then `unlink a/d/f` for each entry — so a directory
 * swapped for a link to "/" between the two would be emptied through the
 * link. GNU rm walks by open directory (fts: each opened with O_NOFOLLOW
 * from the one before, its device and inode checked, entries removed
 * relative to it), and a symlink it meets is removed, never followed. Its
 * failures also name the file and the reason. The path to the tree must be
 * the driver's own (a .trash or .tmp under its root); the share agent,
 * whose paths are not, hands rm the directory it opened instead
 * (backends/nfs/share-walk.ts).
 *
 * A file system mounted inside the tree is not the tree's: an administrator's
 * bind or disk, or a pod's own mount carried into its volume by mount
 * propagation. rm goes down into it and empties it before it fails on the
 * mount point, so a tree with anything mounted in it is not removed at all
 * (FAILED_PRECONDITION, naming the mount). rm is not confined to one file
 * system: a btrfs subvolume a pod made inside its volume is no mount, has a
 * device of its own, and must go too.
 *
 * The start-up sweeps remove what interrupted calls left. One that will not
 * go (a file made immutable, a mount inside it) must not keep the driver
 * from starting — in a DaemonSet that is a crash loop — so it is noted
 * instead, for a warning, and the next start tries again.
 */
import { failedPrecondition } from "../csi/errors";
import { mountsInside } from "../mount/volume-mounts";
import { runTool } from "./copy-content";

/** Remove the file or tree at `p` (a path of the driver's own), never following a symlink in it, nor entering a mount in it. */
export async function removeTree(p: string): Promise<void> {
  const problem = mountedInside(p);
  if (problem) throw failedPrecondition(`${p} was not removed: ${problem}, which removing it would empty; unmount it first`);
  await runTool("rm", ["-rf", "--", p]);
}

/** What is mounted at `p` or below it, in words ("tmpfs from x at /a/b"); undefined when nothing is. */
export function mountedInside(p: string): string | undefined {
  const inside = mountsInside(p);
  if (inside.length === 0) return undefined;
  const words = inside.slice(0, 3).map((m) => `${m.fsType} from ${m.source} is mounted at ${m.mountPoint}`);
  return words.join("; ") + (inside.length > 3 ? `; and ${inside.length - 3} more` : "");
}

/** A leftover of an interrupted call that the start-up sweep could not remove, and why. */
export type Leftover = { path: string; problem: string };

/** Run `remove` on the leftover at `p`; if it fails, note it in `left` (it stays) instead of failing the start. */
export async function removeOrNote(left: Leftover[], p: string, remove: () => Promise<void>): Promise<void> {
  try {
    await remove();
  } catch (err) {
    left.push({ path: p, problem: err instanceof Error ? err.message : String(err) });
  }
}
