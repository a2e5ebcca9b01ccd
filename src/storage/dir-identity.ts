/**
 * Which directory (or file) a path holds: an identity that stays while the
 * directory is renamed, chmodded or filled, and that a directory made later
 * in its place never has. The same holds for a regular file (an image
 * volume's): an identity is the inode's, whatever its type.
 *
 * An inode number alone is not that: ext4 gives a removed directory's
 * number to the next one made, at once. Two things tell them apart:
 *
 *   - the birth time, which only statx(2) reports, and only where the file
 *     system keeps one (ext4 with its usual 256-byte inodes, xfs, btrfs,
 *     tmpfs; NFS where client and server support it); its answer's mask
 *     says whether the field is filled;
 *   - the inode's generation (FS_IOC_GETVERSION), a number the file system
 *     changes whenever it reuses an inode — NFS file handles carry it for
 *     the same reason. ext4, xfs and btrfs answer; tmpfs and an NFS client
 *     do not.
 *
 * The identity is "<inode>:<birth time in ns>" where there is a birth time,
 * else "<inode>:g<generation>", else "<inode>:0" (the inode number alone).
 *
 * A record that must keep telling its directory apart for years (a hostPath
 * volume's) keeps the parts apart instead (DirIdentityParts), and compares
 * what it can read now with what it read then.
 *
 * Node's `birthtimeNs` cannot be trusted for this. Where statx is missing
 * (before Linux 4.11) or refused (a container's seccomp profile), libuv
 * falls back to stat(2) and reports the change time as the birth time —
 * which moves at every rename, chmod or new entry.
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync } from "node:fs";
import { ioctlPtr } from "../mount/ioctl";
import {
  AT_NO_AUTOMOUNT,
  AT_SYMLINK_NOFOLLOW,
  STATX_BTIME,
  STATX_INO,
  STATX_OFFSET as OFF,
  STATX_SIZE,
  STATX_SIZE_FIELD,
  STATX_TYPE,
  statxFdInto,
  statxInto,
  statxUnavailable,
} from "../mount/statx";
import { SyscallError } from "../mount/syscalls";

/** FS_IOC_GETVERSION: _IOR('v', 1, long); the kernel writes an int. */
const FS_IOC_GETVERSION = 0x80087601;

const buf = Buffer.alloc(STATX_SIZE);
let noStatx = false;

export interface DirIdentity {
  /** What a marker records now. */
  identity: string;
  /** What markers of version 2 recorded: "<inode>:<birth time or 0>". */
  v2: string;
}

/** The identity of the directory at `p` (a last symlink not followed), whose inode number the caller saw: `ino`. */
export function dirIdentity(p: string, ino: bigint): DirIdentity {
  const born = birthTimeNs(p, ino);
  const v2 = `${ino}:${born}`;
  if (born !== 0n) return { identity: v2, v2 };
  const generation = generationOf(p, ino);
  return { identity: generation === undefined ? v2 : `${ino}:g${generation}`, v2 };
}

/**
 * The birth time of the file at `p` (a last symlink not followed) in
 * nanoseconds since the epoch; 0n where the file system keeps none or the
 * kernel cannot say. A file put in place of inode `ino` since the caller
 * looked is reported (code EAGAIN), not measured. Throws, with the
 * errno's name as `code`, when the file cannot be looked at.
 */
export function birthTimeNs(p: string, ino: bigint): bigint {
  if (noStatx) return 0n;
  const errno = statxInto(p, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_INO | STATX_BTIME, buf);
  if (errno !== 0) return unanswered(errno, p);
  if (buf.readBigUInt64LE(OFF.ino) !== ino) throw replaced(p);
  return bornInBuf();
}

function unanswered(errno: number, what: string): bigint {
  if (!statxUnavailable(errno)) throw new SyscallError("statx", errno, what);
  noStatx = true;
  return 0n;
}

function bornInBuf(): bigint {
  if ((buf.readUInt32LE(OFF.mask) & STATX_BTIME) === 0) return 0n;
  return buf.readBigInt64LE(OFF.btimeSec) * 1_000_000_000n + BigInt(buf.readUInt32LE(OFF.btimeNsec));
}

/** What a record expects at a volume's name: a directory, or a regular file (an image). */
export type DataKind = "dir" | "file";

/** How a directory, or a regular file, is opened to be asked its generation: never following a symlink, never waiting. */
const OPEN_TO_ASK = {
  dir: fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK,
  file: fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY,
};

/** Open the directory (or, `kind` "file", the regular file) at `p` for reading, never following a symlink nor waiting; the caller closes it. */
export function openData(p: string, kind: DataKind): number {
  return openSync(p, OPEN_TO_ASK[kind]);
}

/** The identity parts of the directory (or regular file) at `p`, opened as openData opens it: of what the driver just made there. */
export function identityOfPath(p: string, kind: DataKind): DirIdentityParts {
  const fd = openData(p, kind);
  try {
    return identityParts(fd, p);
  } finally {
    closeSync(fd);
  }
}

/** The generation of the directory (or, `kind` "file", the regular file) at `p`, inode `ino`; undefined where its file system does not say. */
export function generationOf(p: string, ino: bigint, kind: DataKind = "dir"): number | undefined {
  const fd = openSync(p, OPEN_TO_ASK[kind]);
  try {
    if (fstatSync(fd, { bigint: true }).ino !== ino) throw replaced(p);
    return generationOfFd(fd, p);
  } finally {
    closeSync(fd);
  }
}

/** The generation of the file open at `fd` (opened for reading: FS_IOC_GETVERSION refuses an O_PATH descriptor). */
function generationOfFd(fd: number, what: string): number | undefined {
  const out = Buffer.alloc(8);
  try {
    ioctlPtr(fd, FS_IOC_GETVERSION, out, what);
  } catch (err) {
    if (err instanceof SyscallError && (err.code === "ENOTTY" || err.code === "EOPNOTSUPP" || err.code === "EINVAL")) return undefined;
    throw err;
  }
  return out.readUInt32LE(0);
}

/**
 * Which directory it is, part by part: the inode number, and the birth
 * time and generation where the file system has them. Kept apart, not as
 * one string as a marker keeps it, so that a driver that later can read
 * only one of them (statx refused by a newer seccomp profile, a kernel
 * without it) still compares what it can read with what was recorded,
 * instead of disowning every directory it made.
 */
export interface DirIdentityParts {
  ino: string;
  /** Birth time, ns since the epoch (a decimal string: it does not fit a JSON number). */
  born?: string;
  /** FS_IOC_GETVERSION. */
  generation?: number;
}

/** The identity parts of the directory or file open at `fd` (opened for reading, not O_PATH); `what` names it in an error. */
export function identityParts(fd: number, what: string): DirIdentityParts {
  const seen = lookAt(fd, what);
  const ino = seen?.ino ?? String(fstatSync(fd, { bigint: true }).ino);
  const generation = generationOfFd(fd, what);
  return { ino, ...(seen?.born ? { born: seen.born } : {}), ...(generation !== undefined ? { generation } : {}) };
}

/**
 * Is the directory open at `fd` the one `parts` were taken of? The inode
 * number must match; then the birth time where both have one, else the
 * generation where both have one, decides; where neither does, the inode
 * number alone.
 */
export function isSameDirectory(fd: number, parts: DirIdentityParts, what: string): boolean {
  return isSameData(fd, parts, "dir", what);
}

/** isSameDirectory for a directory or, `kind` "file", a regular file: the type must be the one expected too. */
export function isSameData(fd: number, parts: DirIdentityParts, kind: DataKind, what: string): boolean {
  const seen = lookAt(fd, what) ?? fromStats(fstatSync(fd, { bigint: true }));
  return judge(seen, parts, kind, () => generationOfFd(fd, what));
}

/**
 * Is the directory at `p` (a last symlink not followed) the one `parts`
 * were taken of, as isSameDirectory judges it: a look by name, for a
 * report or a check before an act; an act goes through a descriptor.
 */
export function directoryAt(p: string, parts: DirIdentityParts): "same" | "other" | "absent" {
  return identityAt(p, parts, "dir");
}

/** directoryAt for a directory or, `kind` "file", a regular file (an image volume's). */
export function identityAt(p: string, parts: DirIdentityParts, kind: DataKind): "same" | "other" | "absent" {
  return lookAtData(p, parts, kind).verdict;
}

/** What one look by name saw: whether it is the one `parts` were taken of, and its size (bytes) when it is there. */
export interface DataLook {
  verdict: "same" | "other" | "absent";
  size?: number;
}

/** identityAt, with the size the same look saw (an image's condition needs both: one system call, not two). */
export function lookAtData(p: string, parts: DirIdentityParts, kind: DataKind): DataLook {
  try {
    let seen = lookAt(p, p);
    if (!seen) {
      const st = lstatSync(p, { bigint: true, throwIfNoEntry: false });
      if (!st) return { verdict: "absent" };
      seen = fromStats(st);
    }
    const ino = BigInt(seen.ino);
    return { verdict: judge(seen, parts, kind, () => generationOf(p, ino, kind)) ? "same" : "other", size: seen.size };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { verdict: "absent" };
    if (code === "EAGAIN" || code === "ELOOP" || code === "ENOTDIR") return { verdict: "other" }; // replaced while looked at
    throw err;
  }
}

/** What one look at a file says of its identity. */
interface Seen {
  type: DataKind | "other";
  ino: string;
  /** The birth time, where the file system keeps one and the kernel said. */
  born?: string;
  size: number;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

/**
 * Type, inode and birth time in one statx(2): of the file open at `fd`, or
 * at path `p` without following a last symlink. Undefined where the kernel
 * cannot answer statx here (the callers then ask fstat or lstat, and have
 * no birth time); any other error is thrown with its errno's name as code.
 */
function lookAt(at: number | string, what: string): Seen | undefined {
  if (noStatx) return undefined;
  const mask = STATX_TYPE | STATX_INO | STATX_BTIME | STATX_SIZE_FIELD;
  const errno = typeof at === "number" ? statxFdInto(at, mask, buf) : statxInto(at, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, mask, buf);
  if (errno !== 0) {
    unanswered(errno, what);
    return undefined;
  }
  const born = bornInBuf();
  const type = buf.readUInt16LE(OFF.mode) & S_IFMT;
  const seen: Seen = {
    type: type === S_IFDIR ? "dir" : type === S_IFREG ? "file" : "other",
    ino: String(buf.readBigUInt64LE(OFF.ino)),
    size: Number(buf.readBigUInt64LE(OFF.size)),
  };
  return born !== 0n ? { ...seen, born: String(born) } : seen;
}

function fromStats(st: { isDirectory(): boolean; isFile(): boolean; ino: bigint; size: bigint }): Seen {
  return { type: st.isDirectory() ? "dir" : st.isFile() ? "file" : "other", ino: String(st.ino), size: Number(st.size) };
}

/** The rule of isSameDirectory, on what a look saw; the generation is asked only where it decides. */
function judge(seen: Seen, parts: DirIdentityParts, kind: DataKind, generation: () => number | undefined): boolean {
  if (seen.type !== kind || seen.ino !== parts.ino) return false;
  if (parts.born !== undefined && seen.born !== undefined) return seen.born === parts.born;
  if (parts.generation !== undefined) {
    const now = generation();
    if (now !== undefined) return now === parts.generation;
  }
  return true;
}

function replaced(p: string): Error {
  return Object.assign(new Error(`${p} was replaced while it was looked at`), { code: "EAGAIN" });
}
