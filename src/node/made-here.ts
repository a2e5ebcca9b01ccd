/**
 * A mark on what the driver makes at a staging or target path.
 *
 * NodePublishVolume makes the target directory (or, for a block volume, the
 * file a device is bound onto) when the CO has not, and the spec asks
 * NodeUnpublishVolume to remove it again. But an empty directory at a
 * target proves nothing: the CO may have made it, or another program. So
 * the driver marks what it makes with an extended attribute in the
 * "trusted" namespace — only a process with CAP_SYS_ADMIN can set or forge
 * one — naming the volume it was made for, and removes only what carries
 * the mark of the volume a request names. The mark lives on the directory
 * itself, so it survives a driver restart and needs no record elsewhere;
 * a file system without extended attributes simply gets no mark, and what
 * the driver made there is left for the CO to remove.
 */
import { libc } from "../mount/libc";

const lsetxattr = libc.func("int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)") as (
  path: string,
  name: string,
  value: Buffer,
  size: number,
  flags: number,
) => number;
const lgetxattr = libc.func("long lgetxattr(const char *path, const char *name, _Out_ void *value, size_t size)") as (
  path: string,
  name: string,
  value: Buffer,
  size: number,
) => number;

const NAME = "trusted.csi-lab.made-for";

/** Mark `p` (not following a symlink) as made for `volumeId`; false where the file system cannot hold the mark. */
export function markMadeFor(p: string, volumeId: string): boolean {
  const value = Buffer.from(volumeId);
  return lsetxattr(p, NAME, value, value.length, 0) === 0;
}

/** The volume `p` was made for, if the driver marked it. */
export function madeFor(p: string): string | undefined {
  const buf = Buffer.alloc(256);
  const n = lgetxattr(p, NAME, buf, buf.length);
  return n > 0 ? buf.subarray(0, n).toString() : undefined;
}
