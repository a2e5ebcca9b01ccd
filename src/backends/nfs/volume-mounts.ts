/**
 * Which mounts on this node show a shared volume.
 *
 * A volume staged from an NFS export shows up in mountinfo with the
 * export's path as its source ("server:/share/subDir"); one staged from a
 * local share is a bind mount, found like any bind mount by the device and
 * path inside the file system of <share>/<subDir>. Finding that directory
 * touches the share, so it goes through the share agent with its deadline;
 * when the share does not answer, nobody can tell: the caller is given why
 * (UNAVAILABLE), never a guess.
 */
import { CsiError, unavailable } from "../../csi/errors";
import { locate, mountTable, type FsLocation, type MountEntry } from "../../mount/mountinfo";
import { deletedLocation } from "../../mount/volume-mounts";
import { isUnhealthy, shareErrno, type ShareIo } from "./share-io";
import { describeShare } from "./share-mounts";
import { nfsSource, type SharedLocation } from "./volume-id";

/** The volume's directory as a path (local share) or the part after "server:" (export). */
export function sourceDir(loc: SharedLocation): string {
  return `${loc.share === "/" ? "" : loc.share}/${loc.subDir}`;
}

/**
 * What names the volume's mounts in the mount table: an export's source, or
 * the device and root of a local share's directory (absent: it is not
 * there, and nothing can show it). A local share's volume whose directory has since been removed
 * still shows in mountinfo, as its old path with "//deleted" after it:
 * that is still this volume's mount, and its to undo.
 */
type Identity = { source: string } | { at: FsLocation | undefined } | { unknown: CsiError };

async function identityOf(io: ShareIo, loc: SharedLocation): Promise<Identity> {
  if (loc.server) return { source: nfsSource(loc.server, sourceDir(loc)) };
  let real: string;
  try {
    real = await io.run<string>("realpath", { root: loc.share, sub: loc.subDir }, describeShare(loc));
  } catch (err) {
    if (isUnhealthy(err)) return cannotSay(loc, err);
    if (shareErrno(err) !== "ENOENT") throw err;
    // The directory is gone: where it was, below the share's own real path.
    try {
      real = `${await io.run<string>("realpath", { path: loc.share }, describeShare(loc))}/${loc.subDir}`.replace(/^\/\//, "/");
    } catch (err2) {
      if (isUnhealthy(err2)) return cannotSay(loc, err2);
      if (shareErrno(err2) === "ENOENT") return { at: undefined };
      throw err2;
    }
  }
  return { at: locate(mountTable(), real) };
}

/**
 * Why the share could not say: its own UNAVAILABLE when it gave no answer (none within the deadline, or not asked while a tool
 * stopped there is still stuck in the kernel), else what it answered (ESTALE, EIO, …) as one.
 */
function cannotSay(loc: SharedLocation, err: unknown): { unknown: CsiError } {
  if (err instanceof CsiError) return { unknown: err };
  return { unknown: unavailable(`${describeShare(loc)} cannot say which mount shows directory ${loc.subDir}: ${(err as Error).message}`) };
}

/**
 * Which mounts show the volume: a test for "this mount entry shows it", or,
 * when the share could not be asked, why (UNAVAILABLE). The caller must not
 * take "could not be asked" for "not the volume's".
 */
export type MountIdentity = { test: (m: MountEntry) => boolean } | { unknown: CsiError };

export async function mountIdentity(io: ShareIo, loc: SharedLocation): Promise<MountIdentity> {
  const id = await identityOf(io, loc);
  if ("unknown" in id) return id;
  if ("source" in id) return { test: (m) => m.source === id.source };
  const { at } = id;
  if (!at) return { test: () => false };
  const gone = deletedLocation(at).root;
  return { test: (m) => m.device === at.device && (m.root === at.root || m.root === gone) };
}

/** Where the volume is mounted on this node (undefined: the share did not answer). */
export async function sharedVolumeMounts(io: ShareIo, loc: SharedLocation): Promise<MountEntry[] | undefined> {
  const id = await identityOf(io, loc);
  if ("unknown" in id) return undefined;
  const table = mountTable();
  if ("source" in id) return table.withSource(id.source);
  return id.at ? [...table.of(id.at), ...table.of(deletedLocation(id.at))] : [];
}
