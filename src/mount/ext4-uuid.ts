/**
 * A new UUID for a cloned ext4 file system, written directly.
 *
 * A file system's UUID is how tools and udev tell file systems apart
 * (blkid, /dev/disk/by-uuid). A clone of a template (see
 * backends/hostpath/templates.ts) starts with the template's UUID, so
 * every volume cloned from it would share one. `tune2fs -U` changes it,
 * at the cost of a process start — what templates are there to avoid.
 *
 * On most ext4 file systems changing the UUID means rewriting every
 * checksum, because metadata checksums are seeded with the UUID. The
 * `metadata_csum_seed` feature stores that seed in the super-block
 * instead (s_checksum_seed), so the UUID becomes a label: the templates
 * are made with it (filesystem.ts), and a new UUID is then a change to
 * the super-block and its backups only. Each copy is 1,024 bytes with a
 * CRC32C of its first 1,020 at the end (s_checksum); the backups sit at
 * the start of block groups 1 and the powers of 3, 5 and 7 (sparse_super)
 * or of the two groups the super-block names (sparse_super2). The journal
 * keeps the template's UUID in its own super-block: the kernel checks it
 * only for an external journal, and e2fsck agrees.
 *
 * A file system without that feature (or without metadata_csum, whose
 * checksum this writes) is left alone: `newExt4Uuid` says false.
 */
import { randomBytes } from "node:crypto";
import { closeSync, constants as fsc, openSync, readSync } from "node:fs";
import { writeAll } from "../storage/fd-calls";

const SB_OFFSET = 1024;
const SB_SIZE = 1024;
// Offsets inside the super-block (struct ext4_super_block).
const S_BLOCKS_COUNT_LO = 0x04;
const S_FIRST_DATA_BLOCK = 0x14;
const S_LOG_BLOCK_SIZE = 0x18;
const S_BLOCKS_PER_GROUP = 0x20;
const S_MAGIC = 0x38;
const S_FEATURE_COMPAT = 0x5c;
const S_FEATURE_INCOMPAT = 0x60;
const S_FEATURE_RO_COMPAT = 0x64;
const S_UUID = 0x68;
const S_BACKUP_BGS = 0x24c;
const S_BLOCKS_COUNT_HI = 0x150;
const S_CHECKSUM = 0x3fc;

const EXT4_MAGIC = 0xef53;
const COMPAT_SPARSE_SUPER2 = 0x200;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_CSUM_SEED = 0x2000;
const RO_COMPAT_SPARSE_SUPER = 0x1;
const RO_COMPAT_METADATA_CSUM = 0x400;

// CRC32C (Castagnoli), reflected, as ext4 computes it: seeded with ~0 and not inverted at the end.
const CRC_TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  CRC_TABLE[n] = c >>> 0;
}

export function crc32c(seed: number, bytes: Uint8Array): number {
  let crc = seed >>> 0;
  for (const b of bytes) crc = CRC_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return crc >>> 0;
}

/** The checksum a super-block should carry (valid with metadata_csum). */
export function superblockChecksum(sb: Buffer): number {
  return crc32c(0xffffffff, sb.subarray(0, S_CHECKSUM));
}

/** Is `n` a power of `base` (base^1 and up)? */
function isPowerOf(n: number, base: number): boolean {
  let p = base;
  while (p < n) p *= base;
  return p === n;
}

/** Byte offsets of the backup super-blocks, from the primary. */
export function backupSuperblocks(sb: Buffer): number[] {
  const blockSize = 1024 << sb.readUInt32LE(S_LOG_BLOCK_SIZE);
  const first = sb.readUInt32LE(S_FIRST_DATA_BLOCK);
  const perGroup = sb.readUInt32LE(S_BLOCKS_PER_GROUP);
  const is64 = (sb.readUInt32LE(S_FEATURE_INCOMPAT) & INCOMPAT_64BIT) !== 0;
  const blocks = sb.readUInt32LE(S_BLOCKS_COUNT_LO) + (is64 ? sb.readUInt32LE(S_BLOCKS_COUNT_HI) * 2 ** 32 : 0);
  const groups = Math.ceil((blocks - first) / perGroup);
  let hasBackup: (g: number) => boolean;
  if (sb.readUInt32LE(S_FEATURE_COMPAT) & COMPAT_SPARSE_SUPER2) {
    const named = [sb.readUInt32LE(S_BACKUP_BGS), sb.readUInt32LE(S_BACKUP_BGS + 4)];
    hasBackup = (g) => named.includes(g);
  } else if (sb.readUInt32LE(S_FEATURE_RO_COMPAT) & RO_COMPAT_SPARSE_SUPER) {
    hasBackup = (g) => g === 1 || isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7);
  } else {
    hasBackup = () => true;
  }
  const out: number[] = [];
  for (let g = 1; g < groups; g++) if (hasBackup(g)) out.push((g * perGroup + first) * blockSize);
  return out;
}

/** A random (version 4) UUID's 16 bytes. */
function randomUuid(): Buffer {
  const u = randomBytes(16);
  u[6] = (u[6]! & 0x0f) | 0x40;
  u[8] = (u[8]! & 0x3f) | 0x80;
  return u;
}

/**
 * Give the ext4 file system in the image file `image` a new random UUID
 * (see the top of this file). Returns false, changing nothing, when its
 * features do not allow it. Not flushed: the caller syncs the file.
 */
export async function newExt4Uuid(image: string): Promise<boolean> {
  const fd = openSync(image, fsc.O_RDWR | fsc.O_NOFOLLOW);
  try {
    return await newExt4UuidAt(fd, image);
  } finally {
    closeSync(fd);
  }
}

/**
 * The same, on an image open for reading and writing at `fd`. The
 * super-blocks are read directly: an image just cloned has them in the
 * page cache. The writes go through the thread pool, as every write that
 * may wait for the journal does (storage/atomic-file.ts).
 */
export async function newExt4UuidAt(fd: number, image: string): Promise<boolean> {
  const primary = Buffer.alloc(SB_SIZE);
  readAll(fd, primary, SB_OFFSET);
  if (primary.readUInt16LE(S_MAGIC) !== EXT4_MAGIC) return false;
  const seeded = (primary.readUInt32LE(S_FEATURE_INCOMPAT) & INCOMPAT_CSUM_SEED) !== 0;
  const checksummed = (primary.readUInt32LE(S_FEATURE_RO_COMPAT) & RO_COMPAT_METADATA_CSUM) !== 0;
  if (!seeded || !checksummed || superblockChecksum(primary) !== primary.readUInt32LE(S_CHECKSUM)) return false;
  const uuid = randomUuid();
  const rewrite = async (sb: Buffer, at: number) => {
    uuid.copy(sb, S_UUID);
    sb.writeUInt32LE(superblockChecksum(sb), S_CHECKSUM);
    await writeAll(fd, sb, at, image);
  };
  // The image is a new volume's, still in .tmp: a crash half-way leaves an entry the start-up sweep removes.
  await Promise.all(
    backupSuperblocks(primary).map(async (at) => {
      const sb = Buffer.alloc(SB_SIZE);
      readAll(fd, sb, at);
      // A backup that is not one (never the case for what mke2fs made) is left as it is.
      if (sb.readUInt16LE(S_MAGIC) === EXT4_MAGIC) await rewrite(sb, at);
    }),
  );
  await rewrite(primary, SB_OFFSET);
  return true;
}

/** Fill `buf` from `fd` at `at`; bytes past the end of the file read as zeros (they fail the magic check). */
function readAll(fd: number, buf: Buffer, at: number): void {
  buf.fill(0);
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, at + off);
    if (n === 0) return;
    off += n;
  }
}
