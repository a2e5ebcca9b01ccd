/**
 * Opening the root of a mount the table lists, proven to be that root.
 *
 * A mount point is a name. Between reading the mount table and opening the
 * name, the mount may be gone — the bare directory under it is then what
 * opens — or another may be in its place, and a change made through the
 * name (a chmod of a volume's root) would land on a directory that is not
 * the volume's. So what was opened is proven, through its descriptor, to
 * be the root of the very mount the table listed:
 *
 *   - on that mount: the kernel's mount ID of the descriptor (mnt_id in
 *     /proc/self/fdinfo, the ID mountinfo lists first), and its device,
 *     the mount's (an ID an unmount frees may be the next mount's at once);
 *   - at its root: its parent, "..", is on another mount. From a mount's
 *     root ".." leaves the mount; from any directory below, it stays.
 *
 * The descriptor holds the file system: unmounted meanwhile, it stays what
 * was proven, and a loop device under it stays attached to its file. So
 * for an image volume's mount, the loop device is then proven backed by
 * the volume's image (openImageRoot).
 */
import { closeSync, constants as fsc, fstatSync, openSync, readFileSync } from "node:fs";
import { errnoOf } from "../csi/errors";
import { loopBacks, loopNumberOfDevice, type FileIdentity } from "./loop";
import type { MountEntry } from "./mountinfo";

/** O_PATH (Linux): names a directory without opening it for reading. */
const O_PATH = 0o10000000;

/**
 * A descriptor of the root of mount `m`, opened for reading (fchmod takes
 * one), no symlink followed; undefined when what is at its mount point now
 * is not that root. The caller closes it.
 */
export function openMountRoot(m: MountEntry): number | undefined {
  let fd: number;
  try {
    fd = openSync(m.mountPoint, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    if (["ENOENT", "ENOTDIR", "ELOOP"].includes(errnoOf(err) ?? "")) return undefined;
    throw err;
  }
  let proven = false;
  try {
    proven = isRootOf(fd, m);
  } finally {
    if (!proven) closeSync(fd);
  }
  return proven ? fd : undefined;
}

/**
 * openMountRoot, and the mount's device a loop device backed by `image`
 * (with the file system held open by the descriptor, it stays so);
 * undefined when it is not, or `image` is unknown. The caller closes it.
 */
export function openImageRoot(m: MountEntry, image: FileIdentity | undefined): number | undefined {
  const fd = openMountRoot(m);
  if (fd === undefined) return undefined;
  const n = loopNumberOfDevice(m.device);
  if (n !== undefined && image !== undefined && loopBacks(n, image)) return fd;
  closeSync(fd);
  return undefined;
}

function isRootOf(fd: number, m: MountEntry): boolean {
  if (mountIdOf(fd) !== m.id || deviceOf(fd) !== m.device) return false;
  const parent = openSync(`/proc/self/fd/${fd}/..`, O_PATH | fsc.O_DIRECTORY);
  try {
    return mountIdOf(parent) !== m.id;
  } finally {
    closeSync(parent);
  }
}

/** The ID of the mount the file open at `fd` is on. */
function mountIdOf(fd: number): number {
  const found = /^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"));
  if (!found) throw new Error(`/proc/self/fdinfo/${fd} names no mount (a kernel before 3.15?)`);
  return Number(found[1]);
}

/** The device of the file open at `fd`, "major:minor" as mountinfo spells it (glibc's major() and minor()). */
function deviceOf(fd: number): string {
  const dev = fstatSync(fd, { bigint: true }).dev;
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}
