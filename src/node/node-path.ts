/**
 * Staging and target paths: where a node call may act, and how it acts there.
 *
 * The kubelet names the places a volume goes: a staging path per volume
 * (<kubelet-dir>/plugins/kubernetes.io/csi/<driver>/<hash>/globalmount)
 * and a target path per pod (<kubelet-dir>/pods/<uid>/volumes/…/mount).
 * Both always lie inside the kubelet's directory. A node plugin runs as
 * root, so a path outside it — "/", "/proc", "/etc/passwd" — is never a
 * place to mount, unmount, make or remove anything, whatever the request
 * says. The rules, checked before anything is touched:
 *
 *   - absolute and clean: no "..", ".", "//" or trailing "/";
 *   - its parent, with every symlink resolved, lies inside one of the
 *     --kubelet-dir directories (resolved the same way), and the path
 *     itself is not that directory, not inside the driver's --root, and
 *     not a system location (src/csi/system-paths.ts).
 *
 * A check of a path string can be outrun: between the check and the act,
 * a directory on the way could be swapped for a symlink to "/". So the act
 * does not use the string. The parent is opened with no symlink followed
 * on the way — by one openat2(RESOLVE_NO_SYMLINKS) where the kernel has it
 * (src/mount/open-no-symlinks.ts), else by walking from the kubelet directory one
 * component at a time with O_NOFOLLOW; either way a swapped-in symlink
 * fails the open — and every later step goes through that open
 * directory (/proc/self/fd/N/<name>): lstat, mkdir, rmdir, unlink, unmount
 * (with UMOUNT_NOFOLLOW), and mount(2) onto the final directory or file
 * opened O_PATH|O_NOFOLLOW. Once something is mounted there the kernel
 * refuses to rename or replace it (EBUSY), so the place stays the same.
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readdirSync, realpathSync, rmdirSync, unlinkSync } from "node:fs";
import * as path from "node:path";
import { failedPrecondition, invalidArgument, notFound } from "../csi/errors";
import { cleanPathProblem, isAtOrUnder, systemPathProblem } from "../csi/system-paths";
import { MAX_PATH_BYTES, requireString } from "../csi/validate";
import type { MountPlace } from "../mount/bind";
import type { MountEntry } from "../mount/mountinfo";
import type { Driver } from "../server/driver";
import { madeFor, makeMarked, removePlaceholder } from "./made-here";
import { checkNoSymlinks, openDirNoSymlinks } from "../mount/open-no-symlinks";

/** O_PATH (Linux): an fd that names a file without opening it for I/O; with O_NOFOLLOW it never follows a symlink. */
const O_PATH = 0o10000000;

export interface NodePath {
  /** The field it came from, for messages ("target_path"). */
  readonly field: string;
  /** The path as the request gave it. */
  readonly given: string;
  /** The same place with symlinks resolved: how mountinfo spells a mount there. */
  readonly real: string;
  /** The kubelet directory (resolved) it lies in. */
  readonly kubeletDir: string;
  /** The parent directory, resolved; undefined when it does not exist. */
  readonly parent: string | undefined;
  readonly name: string;
}

/**
 * Check a staging or target path against the rules above. INVALID_ARGUMENT
 * names the rule broken (or NOT_FOUND, for NodeGetVolumeStats, where a
 * path that cannot hold the volume just means "not mounted there").
 */
export function nodePath(driver: Driver, value: string | undefined, field: string, refuse: "invalid" | "not-found" = "invalid"): NodePath {
  const given = requireString(value, field);
  const bad = (why: string) =>
    refuse === "invalid" ? invalidArgument(`${field} ${JSON.stringify(given)}: ${why}`) : notFound(`the volume is not mounted at ${JSON.stringify(given)}: ${why}`);
  if (Buffer.byteLength(given) > MAX_PATH_BYTES) throw bad(`longer than ${MAX_PATH_BYTES} bytes`);
  const unclean = cleanPathProblem(given);
  if (unclean) throw bad(unclean);
  const system = systemPathProblem(given);
  if (system) throw bad(`${system}; a ${field} must lie inside the kubelet directory (${driver.config.kubeletDirs.join(", ")})`);

  const name = path.basename(given);
  const kubeletDirs = realKubeletDirs(driver);
  const parent = realParent(kubeletDirs, path.dirname(given));
  // A missing parent is judged by the path as given; an existing one by where it really leads.
  const where = parent === undefined ? given : path.join(parent, name);
  const kubeletDir =
    kubeletDirs.find(({ real }) => where !== real && isAtOrUnder(where, real))?.real ?? (parent === undefined ? lexicalKubeletDir(driver, given) : undefined);
  if (!kubeletDir) {
    const leads = where === given ? "" : ` (it leads to ${where})`;
    throw bad(`a ${field} must lie inside the kubelet directory (${driver.config.kubeletDirs.join(", ")}; flag --kubelet-dir)${leads}`);
  }
  const root = realRoot(driver);
  if (isAtOrUnder(where, root) || isAtOrUnder(root, where)) throw bad(`it overlaps the driver's own root ${root}`);
  const realSystem = systemPathProblem(where);
  if (realSystem) throw bad(`it leads to ${where}: ${realSystem}`);
  return { field, given, real: where, kubeletDir, parent, name };
}

/**
 * The parent directory with every symlink resolved; undefined when it does
 * not exist. The usual case — spelled under a --kubelet-dir, with no
 * symlink below it — is proved by one openat2 with RESOLVE_NO_SYMLINKS
 * (src/mount/open-no-symlinks.ts): then the resolved path is the kubelet
 * directory's resolved path and the rest as given. Anything else is
 * resolved by realpath(3), one readlink per component.
 */
function realParent(kubeletDirs: readonly KubeletDir[], dir: string): string | undefined {
  for (const k of kubeletDirs) {
    if (!isAtOrUnder(dir, k.given)) continue;
    const candidate = k.real + dir.slice(k.given.length);
    const found = checkNoSymlinks(candidate);
    if (found === "symlink-free") return candidate;
    if (found === "absent") return undefined;
    break;
  }
  try {
    return realpathSync.native(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT" && (err as NodeJS.ErrnoException).code !== "ENOTDIR") throw err;
    return undefined;
  }
}

/** `<np>/<name>`: a file the driver keeps inside a staging directory (a block volume's device file). */
export function childPath(np: NodePath, name: string): NodePath {
  return { field: np.field, given: path.join(np.given, name), real: path.join(np.real, name), kubeletDir: np.kubeletDir, parent: np.real, name };
}

/** Does the resolved path `p` lie inside one of the kubelet directories (resolved), below it? */
export function insideKubeletDir(driver: Driver, p: string): boolean {
  return realKubeletDirs(driver).some(({ real }) => p !== real && isAtOrUnder(p, real));
}

/**
 * The kubelet directories with symlinks resolved. Each is resolved once,
 * when first found: they are the operator's fixed choice, and a directory
 * retargeted later can only make fewer paths pass (a path is judged by
 * where it really leads, against where the directory led at first).
 */
function realKubeletDirs(driver: Driver): KubeletDir[] {
  let known = resolved.get(driver);
  if (!known) resolved.set(driver, (known = new Map()));
  const out: KubeletDir[] = [];
  for (const k of driver.config.kubeletDirs) {
    let real = known.get(k);
    if (real === undefined) {
      try {
        real = realpathSync.native(k);
        known.set(k, real);
      } catch {
        continue; // not there (yet): nothing can be inside it
      }
    }
    out.push({ given: k, real });
  }
  return out;
}

/** A --kubelet-dir as configured, and where it really is. */
interface KubeletDir {
  readonly given: string;
  readonly real: string;
}

const resolved = new WeakMap<Driver, Map<string, string>>();

/** For a path whose parent does not exist: the configured kubelet directory it is spelled under, if any. */
function lexicalKubeletDir(driver: Driver, given: string): string | undefined {
  return driver.config.kubeletDirs.find((k) => given !== k && isAtOrUnder(given, k));
}

function realRoot(driver: Driver): string {
  let known = resolved.get(driver);
  if (!known) resolved.set(driver, (known = new Map()));
  const cached = known.get(ROOT_KEY);
  if (cached !== undefined) return cached;
  try {
    const real = realpathSync.native(driver.config.root);
    known.set(ROOT_KEY, real);
    return real;
  } catch {
    return driver.config.root;
  }
}

/** The root's entry in `resolved` (no kubelet directory is spelled with a NUL). */
const ROOT_KEY = "\0root";

/** An open handle on a node path's parent directory, reached without following any symlink. */
export interface Anchor {
  /** /proc/self/fd/<parent>/<name>: the place, reached through the open parent. */
  readonly at: string;
  close(): void;
}

/**
 * Open the parent without following any symlink: openat2, or a walk from
 * the kubelet directory with O_NOFOLLOW.
 * undefined when the parent does not exist; FAILED_PRECONDITION when the
 * walk meets a symlink or a non-directory (something changed since the
 * path was checked).
 */
export function anchor(np: NodePath): Anchor | undefined {
  if (np.parent === undefined) return undefined;
  // One system call where the kernel has openat2; the walk below otherwise,
  // and to name what is wrong when openat2 refuses.
  const fast = openDirNoSymlinks(np.parent);
  if (fast.kind === "absent") return undefined;
  if (fast.kind === "open") return { at: `/proc/self/fd/${fast.fd}/${np.name}`, close: () => closeSync(fast.fd) };
  const rel = path.relative(np.kubeletDir, np.parent);
  let fd = openSync(np.kubeletDir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    for (const c of rel === "" ? [] : rel.split("/")) {
      let next: number;
      try {
        next = openSync(`/proc/self/fd/${fd}/${c}`, O_PATH | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOENT") {
          closeSync(fd);
          return undefined;
        }
        if (code === "ENOTDIR" || code === "ELOOP") throw failedPrecondition(`${np.field} ${np.given}: ${c} on the way is not a directory any more (a symbolic link?); nothing was done`);
        throw err;
      }
      closeSync(fd);
      fd = next;
    }
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  const parentFd = fd;
  return { at: `/proc/self/fd/${parentFd}/${np.name}`, close: () => closeSync(parentFd) };
}

/** Run `fn` with the place anchored; undefined (fn not run) when the parent does not exist. */
export async function withAnchor<T>(np: NodePath, fn: (a: Anchor) => Promise<T> | T): Promise<T | undefined> {
  const a = anchor(np);
  if (!a) return undefined;
  try {
    return await fn(a);
  } finally {
    a.close();
  }
}

export type Occupant =
  | { kind: "absent" }
  | { kind: "dir"; empty: boolean; entries: string[] }
  | { kind: "file"; size: number }
  | { kind: "symlink" }
  | { kind: "other"; what: string };

/** What is at the anchored place, not following a symlink. */
export function occupant(a: Anchor): Occupant {
  // Nothing there is the usual answer for a new target: no exception for it.
  const st = lstatSync(a.at, { throwIfNoEntry: false });
  if (st === undefined) return { kind: "absent" };
  if (st.isSymbolicLink()) return { kind: "symlink" };
  if (st.isDirectory()) {
    const fd = openSync(a.at, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
    try {
      const entries = readdirSync(`/proc/self/fd/${fd}`);
      return { kind: "dir", empty: entries.length === 0, entries };
    } finally {
      closeSync(fd);
    }
  }
  if (st.isFile()) return { kind: "file", size: st.size };
  return { kind: "other", what: st.isBlockDevice() ? "a block device" : st.isCharacterDevice() ? "a character device" : st.isSocket() ? "a socket" : "a special file" };
}

/** Words for what is at a place, for messages. */
export function describeOccupant(o: Occupant): string {
  switch (o.kind) {
    case "absent":
      return "nothing";
    case "dir":
      return o.empty ? "an empty directory" : `a directory holding ${o.entries.slice(0, 3).map((e) => JSON.stringify(e)).join(", ")}${o.entries.length > 3 ? ", …" : ""}`;
    case "file":
      return o.size === 0 ? "an empty file" : `a file of ${o.size} bytes`;
    case "symlink":
      return "a symbolic link";
    case "other":
      return o.what;
  }
}

/** A mount table entry in words: "tmpfs from tmpfs", "ext4 from /dev/loop3 (root /data)". */
export function describeMount(m: MountEntry): string {
  return `${m.fsType} from ${m.source}${m.root !== "/" ? ` (${m.root} of it)` : ""}`;
}

/**
 * Make sure the place is a directory (or a file) the driver may mount onto,
 * making it when it is absent, and run `fn` with a path that mount(2) can
 * take without following anything: the place opened O_PATH|O_NOFOLLOW.
 * A symlink, the wrong kind of file, or a directory that already holds
 * something is FAILED_PRECONDITION: the driver never hides what it did not
 * put there. (A block volume's staging directory may hold the device file
 * the driver itself made: `allow`.)
 */
export async function withMountTarget<T>(
  np: NodePath,
  kind: "dir" | "file",
  fn: (place: MountPlace) => Promise<T> | T,
  opts: { madeFor: string; allow?: (entries: string[]) => boolean },
): Promise<T> {
  const a = anchor(np);
  if (!a) throw failedPrecondition(`${np.field} ${np.given}: its parent directory does not exist; the CO makes it`);
  try {
    let o = occupant(a);
    if (o.kind === "absent") {
      makeMarked(a.at, kind, opts.madeFor, `${np.field} ${np.given}`);
      o = occupant(a);
    }
    if (kind === "dir" && o.kind === "dir" && !o.empty && !(opts.allow?.(o.entries) ?? false)) {
      throw failedPrecondition(`${np.field} ${np.given} is ${describeOccupant(o)}; refusing to mount over what the driver did not put there`);
    }
    if (kind === "file" && o.kind === "file" && o.size !== 0) {
      throw failedPrecondition(`${np.field} ${np.given} is ${describeOccupant(o)}; refusing to mount over data the driver did not write`);
    }
    if (o.kind !== kind) {
      const want = kind === "dir" ? "a directory" : "a file (a block volume is published as a device file)";
      throw failedPrecondition(`${np.field} ${np.given} is ${describeOccupant(o)}, not ${want}; refusing to mount there`);
    }
    const fd = openSync(a.at, O_PATH | fsc.O_NOFOLLOW);
    try {
      const st = fstatSync(fd);
      if (kind === "dir" ? !st.isDirectory() : !st.isFile()) throw failedPrecondition(`${np.field} ${np.given} changed while it was being checked; nothing was mounted`);
      return await fn({ path: np.real, mountOn: `/proc/self/fd/${fd}`, at: a.at });
    } finally {
      closeSync(fd);
    }
  } finally {
    a.close();
  }
}

/**
 * After the volume's mounts are gone: remove what NodePublishVolume made
 * at the place for this volume — an empty directory, or the empty file a
 * block volume was bound onto (`kind` says which, or "either"), carrying
 * the driver's mark for `volumeId` (made-here.ts) — as the spec asks. An empty one
 * without that mark is the CO's (or someone else's) and stays; so does
 * nothing at all. Anything else (a file with data, a directory with
 * entries, a symlink, a device) is FAILED_PRECONDITION naming it, and stays.
 */
export async function removeWhatWasMade(np: NodePath, kind: "dir" | "file" | "either", volumeId: string): Promise<void> {
  await withAnchor(np, (a) => {
    const o = occupant(a);
    if (o.kind === "absent") return void removePlaceholder(a.at); // what a publish killed before its rename left, if it was never retried
    const emptyDir = kind !== "file" && o.kind === "dir" && o.empty;
    const emptyFile = kind !== "dir" && o.kind === "file" && o.size === 0;
    if (emptyDir || emptyFile) {
      if (madeFor(a.at) !== volumeId) return;
      if (emptyDir) rmdirSync(a.at);
      else unlinkSync(a.at);
      return;
    }
    throw failedPrecondition(`${np.field} ${np.given} is ${describeOccupant(o)}, which the driver did not make there; it was left alone`);
  });
}

/**
 * The lock a node call holds on the place it mounts at or unmounts from, beside the one on
 * its volume (src/server/rpc.ts). Two calls for different volumes at one place — a CO's
 * mistake, or a hostile caller; the kubelet gives each volume places of its own — would
 * otherwise both find it free and stack one volume over the other (an image's stage awaits
 * its loop device long enough for that): the second is answered ABORTED, and its retry
 * finds the first volume there. The path is only normalised here: the call validates it.
 */
export function placeKey(p: string | undefined): string[] {
  return typeof p === "string" && p !== "" ? [`place ${path.posix.normalize(p)}`] : [];
}
