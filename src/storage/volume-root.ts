/**
 * The volume's root directory: its permission bits and group.
 *
 * A pod sees the volume's root as the directory at its mount path, so the
 * root's mode and group decide who in the pod may write there. Two things
 * set them: the `mode` mutable parameter (ControllerModifyVolume, a
 * VolumeAttributesClass) and a pod's fsGroup (volume_mount_group), which,
 * as a Pod securityContext promises, makes the root group-owned by that
 * group, group-writable and set-group-ID, so that everything created inside
 * inherits the group.
 *
 * Both act on a directory opened with O_NOFOLLOW|O_DIRECTORY and change it
 * through the descriptor (fchmod/fchown): a symlink planted in place of the
 * root can never redirect the change to some other file on the node.
 * Synchronous calls on purpose: each is one metadata operation on a local
 * directory (see atomic-file.ts for the measurement behind that choice).
 */
import { closeSync, constants as fsc, fchmodSync, fchownSync, fstatSync, openSync } from "node:fs";

const S_ISGID = 0o2000;
const GROUP_RWX = 0o070;

function withDirectory<T>(dir: string, fn: (fd: number) => T): T {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** Set the root's permission bits (including setgid/sticky) exactly. */
export function setRootMode(dir: string, mode: number): void {
  withDirectory(dir, (fd) => setModeOf(fd, mode));
}

/** Set the permission bits of the directory open at `fd` exactly: for a root its caller opened and proved its own. */
export function setModeOf(fd: number, mode: number): void {
  if ((fstatSync(fd).mode & 0o7777) !== mode) fchmodSync(fd, mode);
}

/**
 * Give the root to group `gid`: group owner, group rwx and setgid, other
 * bits unchanged. Idempotent: a root already so costs one fstat.
 */
export function applyMountGroup(dir: string, gid: number): void {
  withDirectory(dir, (fd) => {
    const st = fstatSync(fd);
    const want = (st.mode & 0o7777) | S_ISGID | GROUP_RWX;
    if (st.gid === gid && (st.mode & 0o7777) === want) return;
    if (st.gid !== gid) fchownSync(fd, st.uid, gid);
    // chown may clear set-ID bits, so the mode is set after it, always.
    fchmodSync(fd, want);
  });
}

/** The root's current mode bits and group, for tests and status. */
export function rootOwnership(dir: string): { mode: number; uid: number; gid: number } {
  return withDirectory(dir, (fd) => {
    const st = fstatSync(fd);
    return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  });
}
