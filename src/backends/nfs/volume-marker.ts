/**
 * The marker of a shared volume: the driver's proof that it made a directory.
 *
 * A volume ID names any directory of a share, so an ID alone proves
 * nothing. When CreateVolume makes a volume's directory, it writes a marker
 * on the share, <share>/.csi-lab/volumes/<key>.json (key: a hash of the
 * location), naming the ID the driver gave the volume, its subDir (which
 * an ID in the record form has no room for) and the directory's identity
 * (inode number with birth time or generation, storage/dir-identity.ts).
 * DeleteVolume removes or renames nothing the marker does not prove, and
 * CreateVolume never adopts a directory holding data without one. The
 * marker lives on the share, not on a node, so every controller of a
 * distributed deployment reads the same proof.
 */
import { internal } from "../../csi/errors";
import type { ShareIo } from "./share-io";
import { describeShare } from "./share-mounts";
import type { ShareLocation } from "./volume-id";

/** What the marker on the share says (version 1 markers, from before markers held proof, have neither volumeId nor dir). */
export interface Marker {
  version: number;
  subDir: string;
  name?: string;
  volumeId?: string;
  /**
   * Which directory the driver made: the agent's probe `identity` (storage/dir-identity.ts). Version 2
   * markers hold "<inode>:<birth time in ns, or 0>" (the probe's `v2`), which cannot tell a
   * directory made later in the same inode apart where the file system keeps no birth time.
   */
  dir?: string;
  /**
   * Version 4 on: the volume was deleted with onDelete: retain, so a new
   * claim may take the directory over. Until then it is its claim's, on
   * whichever node a create of another claim arrives (the controller
   * records of a distributed deployment are each node's own).
   */
  released?: boolean;
}
export const MARKER_VERSION = 4;

/** What the share agent's probe says is at a path. */
export interface Probed {
  kind: string;
  identity: string;
  v2: string;
}

/** Is what the probe found the directory the marker names? (A file in its inode never is.) */
export function sameDirectory(mine: Marker, there: Probed): boolean {
  return there.kind === "dir" && mine.dir === (mine.version >= 3 ? there.identity : there.v2);
}

/** The marker of the volume at `key` on the share whose root is at `root`, if there is one. */
export async function readMarker(io: ShareIo, root: string, key: string, share: ShareLocation): Promise<Marker | undefined> {
    const text = await io.run<string | null>("readRecord", { root, key }, describeShare(share));
    if (text === null) return undefined;
    let parsed: Partial<Marker>;
    try {
      parsed = JSON.parse(text) as Partial<Marker>;
    } catch {
      throw internal(`the marker of volume ${key} on ${describeShare(share)} is not valid JSON`);
    }
    if (typeof parsed.subDir !== "string") throw internal(`the marker of volume ${key} on ${describeShare(share)} has no subDir`);
    return { version: Number(parsed.version ?? 1), subDir: parsed.subDir, name: parsed.name, volumeId: parsed.volumeId, dir: parsed.dir, released: parsed.released === true };
  }

