/**
 * Snapshot IDs of shared volumes: where the snapshot is, in the ID itself.
 *
 * A snapshot of a shared volume is kept on the volume's share, not in one
 * controller's root (share-snapshots.ts): in a cluster, the node that takes
 * it, the one that restores it and the one that deletes it may each be
 * another, and each must find it from the ID alone, as the node finds a
 * shared volume from its ID (volume-id.ts). So the ID says which share:
 *
 *   nfsnap1:<server>:<share>:<key>
 *   e.g. nfsnap1:nfs.example.internal:exports,csi-lab:3f2a…(32 hex)
 *
 *   nfsnap1   format version 1
 *   server    the NFS server; empty for a local share
 *   share     the export (or local path), written as in volume IDs
 *   key       32 hex digits of SHA-256 of the snapshot's CSI name: the
 *             snapshot's files on the share are named by it
 *
 * A share whose server and path do not fit in CSI's 128 bytes gets no such
 * ID: its snapshots are kept in the controller's snapshot store, as every
 * snapshot was before.
 */
import { createHash } from "node:crypto";
import { invalidArgument } from "../../csi/errors";
import { MAX_STRING_BYTES } from "../../csi/validate";
import { decodeShare, encodePart, formatVersion, type ShareLocation } from "./volume-id";

export const SHARED_SNAPSHOT_ID_VERSION = 1;

const ID_RE = /^nfsnap(\d{1,6}):/;

export interface SharedSnapshotId {
  share: ShareLocation;
  key: string;
}

/** Is this a shared snapshot's ID, of any format version? */
export function looksSharedSnapshot(id: string): boolean {
  return ID_RE.test(id);
}

/** The key a snapshot of CSI name `name` is kept under on its share. */
export function snapshotKeyOf(name: string): string {
  return createHash("sha256").update(`snapshot\0${name}`).digest("hex").slice(0, 32);
}

/** The ID of snapshot `name` kept on `share`; undefined when server and share are too long for one. */
export function formatSharedSnapshotId(share: ShareLocation, name: string): string | undefined {
  const id = `nfsnap${SHARED_SNAPSHOT_ID_VERSION}:${encodePart(share.server)}:${encodePart(share.share.slice(1))}:${snapshotKeyOf(name)}`;
  return Buffer.byteLength(id) <= MAX_STRING_BYTES ? id : undefined;
}

/**
 * Parse a shared snapshot ID. undefined: not one (another kind of ID).
 * INVALID_ARGUMENT: one this driver cannot read — a newer format or a
 * malformed one — never guessed at.
 */
export function parseSharedSnapshotId(id: string): SharedSnapshotId | undefined {
  const version = formatVersion(id, ID_RE, "snapshot_id", "nfsnap", SHARED_SNAPSHOT_ID_VERSION);
  if (version === undefined) return undefined;
  const bad = (why: string) => invalidArgument(`snapshot_id ${JSON.stringify(id)} is not a valid shared snapshot ID: ${why}`);
  if (version !== 1) throw bad(`there is no format nfsnap${version}`);
  const parts = id.split(":");
  if (parts.length !== 4) throw bad("it must have 4 ':'-separated fields");
  const [, rawServer, rawShare, key] = parts as [string, string, string, string];
  const share = decodeShare(rawServer, rawShare, bad);
  if (!/^[0-9a-f]{32}$/.test(key)) throw bad("the key must be 32 hex digits");
  return { share, key };
}
