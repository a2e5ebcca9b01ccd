/**
 * How much of a file's disk is its own: the bytes it shares with no other
 * file.
 *
 * Where a file system shares extents between files (XFS with reflink=1,
 * btrfs), a clone or a snapshot made with FICLONE takes no new space: both
 * files point at the same blocks, copy-on-write. st_blocks counts those
 * blocks in full for each of them. For the capacity ledger that is the
 * wrong figure: a volume may rewrite every block it shares, and each
 * rewrite then takes a new block while the snapshot keeps the old one. What
 * a volume may still take from the disk is its size less what it owns
 * alone, so shared blocks must not count as used.
 *
 * FS_IOC_FIEMAP lists a file's extents, each with flags; the kernel marks
 * the ones another file also references FIEMAP_EXTENT_SHARED. The sum of
 * the other extents' lengths is the file's own. Delayed-allocation extents
 * (written, not yet placed) count as its own: they will be. The listing is
 * asked in pages of EXTENTS_PER_CALL on a worker thread (btrfs looks up
 * each extent's references, which can take a while on a large file).
 */
import { closeSync, constants as fsc, openSync } from "node:fs";
import { ioc, ioctlPtrAsync } from "../mount/ioctl";

/** struct fiemap: fm_start, fm_length (u64), fm_flags, fm_mapped_extents, fm_extent_count, fm_reserved (u32). */
const HEADER = 32;
/** struct fiemap_extent: fe_logical, fe_physical, fe_length, 2 × u64 reserved, fe_flags, 3 × u32 reserved. */
const EXTENT = 56;
const EXTENTS_PER_CALL = 512;
/** FS_IOC_FIEMAP = _IOWR('f', 11, struct fiemap). */
const FS_IOC_FIEMAP = ioc("rw", 0x66, 11, HEADER);
const FIEMAP_EXTENT_LAST = 0x1;
const FIEMAP_EXTENT_SHARED = 0x2000;
const ALL = 0xffff_ffff_ffff_ffffn;

/** The bytes of the regular file at `file` (not followed if a symlink) that no other file shares. */
export async function exclusiveBytes(file: string): Promise<number> {
  const fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(HEADER + EXTENTS_PER_CALL * EXTENT);
    let own = 0;
    let from = 0n;
    for (;;) {
      buf.fill(0, 0, HEADER);
      buf.writeBigUInt64LE(from, 0);
      buf.writeBigUInt64LE(ALL - from, 8);
      buf.writeUInt32LE(EXTENTS_PER_CALL, 24);
      await ioctlPtrAsync(fd, FS_IOC_FIEMAP, buf, file);
      const mapped = buf.readUInt32LE(20);
      if (mapped === 0) return own;
      let last = false;
      for (let i = 0; i < mapped; i++) {
        const at = HEADER + i * EXTENT;
        const length = buf.readBigUInt64LE(at + 16);
        const flags = buf.readUInt32LE(at + 40);
        if ((flags & FIEMAP_EXTENT_SHARED) === 0) own += Number(length);
        if (flags & FIEMAP_EXTENT_LAST) last = true;
        if (i === mapped - 1) from = buf.readBigUInt64LE(at) + length;
      }
      if (last || mapped < EXTENTS_PER_CALL) return own;
    }
  } finally {
    closeSync(fd);
  }
}
