/**
 * Volume IDs of the shared (nfs) backend: everything the node and
 * DeleteVolume need, in the ID itself.
 *
 * A hostPath ID ("hp-" + 32 hex) names a record in the controller's root.
 * A shared volume must also be usable where that root is not — by the
 * node plugin on another machine, by a controller that restarted elsewhere
 * — without secrets and without asking anyone. So its ID carries where the
 * volume is:
 *
 *   nfs1:<onDelete>:<server>:<share>:<subDir>
 *   e.g. nfs1:d:nfs.example.internal:,exports,csi-lab:pvc-3f2a…
 *
 *   nfs1        format version 1 (see below)
 *   onDelete    d = delete, r = retain, a = archive
 *   server      the NFS server; empty when `share` is a local path
 *               already mounted on every node
 *   share       the export (or local path), absolute, written without its
 *               leading "/"
 *   subDir      the volume's directory inside the share
 *
 * Paths are written with "/" as "," and every byte outside
 * [A-Za-z0-9._~+=@-] as %XX, so an ID is one token of printable ASCII
 * (CSI: at most 128 bytes; validate.ts refuses "/" in IDs). When a long
 * share or subDir would pass 128 bytes, the subDir is kept instead in a
 * small record on the share and the ID names that record:
 *
 *   nfs1:<onDelete>:<server>:<share>:#<key>      key = 32 hex
 *
 * If even that does not fit (server + share beyond ~85 bytes), CreateVolume
 * refuses the StorageClass with INVALID_ARGUMENT.
 *
 * Versions: the number after "nfs" is the format. This driver reads
 * format 1; an ID of a higher format was made by a newer driver and is
 * refused with INVALID_ARGUMENT saying so (never guessed at: deleting the
 * wrong directory is the failure to avoid). A later format must keep
 * reading "nfs1:" IDs, which test/unit/shared-volume-id.test.ts pins down.
 */
import { createHash } from "node:crypto";
import * as path from "node:path";
import { invalidArgument } from "../../csi/errors";
import { MAX_STRING_BYTES } from "../../csi/validate";

export const SHARED_ID_VERSION = 1;

export type OnDelete = "delete" | "retain" | "archive";
export const ON_DELETE: readonly OnDelete[] = ["delete", "retain", "archive"];
const ON_DELETE_LETTER: Record<OnDelete, string> = { delete: "d", retain: "r", archive: "a" };

/** Where a share is: a server's export, or (server "") a local path mounted on every node. */
export interface ShareLocation {
  server: string;
  share: string;
}

/** Where one shared volume is. */
export interface SharedLocation extends ShareLocation {
  subDir: string;
}

export type SharedVolumeId =
  | { form: "inline"; onDelete: OnDelete; location: SharedLocation; key: string }
  | { form: "record"; onDelete: OnDelete; share: ShareLocation; key: string };

const ID_RE = /^nfs(\d{1,6}):/;
const KEEP = /[A-Za-z0-9._~+=@-]/;

/** Is this an ID of the shared backend, of any format version? */
export function looksShared(id: string): boolean {
  return ID_RE.test(id);
}

export function encodePart(s: string): string {
  let out = "";
  for (const byte of Buffer.from(s, "utf8")) {
    const ch = String.fromCharCode(byte);
    if (ch === "/") out += ",";
    else if (byte < 0x80 && KEEP.test(ch)) out += ch;
    else out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

function decodePart(s: string): string | undefined {
  if (!/^([A-Za-z0-9._~+=@,-]|%[0-9A-F]{2})*$/.test(s)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === "%") {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(ch === "," ? 0x2f : ch.charCodeAt(0));
  }
  const text = Buffer.from(bytes).toString("utf8");
  // Only the canonical spelling is accepted: one ID, one volume.
  return encodePart(text) === s ? text : undefined;
}

/** The record key of a volume: the same for both ID forms. */
export function locationKey(loc: SharedLocation): string {
  return createHash("sha256").update(`${loc.server}\0${loc.share}\0${loc.subDir}`).digest("hex").slice(0, 32);
}

/** The ID for a volume at `loc`, inline if it fits in CSI's 128 bytes, else the record form; undefined if neither fits. */
export function formatSharedId(loc: SharedLocation, onDelete: OnDelete): { id: string; form: "inline" | "record" } | undefined {
  const head = `nfs${SHARED_ID_VERSION}:${ON_DELETE_LETTER[onDelete]}:${encodePart(loc.server)}:${encodePart(loc.share.slice(1))}:`;
  const inline = head + encodePart(loc.subDir);
  if (Buffer.byteLength(inline) <= MAX_STRING_BYTES) return { id: inline, form: "inline" };
  const record = `${head}#${locationKey(loc)}`;
  if (Buffer.byteLength(record) <= MAX_STRING_BYTES) return { id: record, form: "record" };
  return undefined;
}

/**
 * Parse a shared-backend ID. undefined: not a shared ID at all (another
 * backend's, or a stranger's). INVALID_ARGUMENT: a shared ID this driver
 * cannot read — a newer format, or a malformed one.
 */
export function parseSharedId(id: string): SharedVolumeId | undefined {
  const version = formatVersion(id, ID_RE, "volume_id", "nfs", SHARED_ID_VERSION);
  if (version === undefined) return undefined;
  if (version !== 1) throw invalidArgument(`volume_id ${JSON.stringify(id)}: there is no shared-volume format nfs${version}`);
  return parseV1(id);
}

/**
 * The format version of an ID that `re` (prefix + digits + ":") matches;
 * undefined when it does not match. One newer than `readable` is
 * INVALID_ARGUMENT: it was made by a newer driver, and is never guessed at.
 */
export function formatVersion(id: string, re: RegExp, field: string, prefix: string, readable: number): number | undefined {
  const m = re.exec(id);
  if (!m) return undefined;
  const version = Number(m[1]);
  if (version > readable) {
    throw invalidArgument(
      `${field} ${JSON.stringify(id)} is in format ${prefix}${version}, made by a newer csi-lab; this driver reads formats up to ${prefix}${readable} — upgrade the driver`,
    );
  }
  return version;
}

/** The server and share of an ID's fields, decoded and checked; `bad` makes the error naming the ID. */
export function decodeShare(rawServer: string, rawShare: string, bad: (why: string) => Error): ShareLocation {
  const server = decodePart(rawServer);
  const shareText = decodePart(rawShare);
  if (server === undefined || shareText === undefined) throw bad("server or share is not canonically encoded");
  const share = "/" + shareText;
  const problem = serverProblem(server) ?? sharePathProblem(share);
  if (problem) throw bad(problem);
  return { server, share };
}

function parseV1(id: string): SharedVolumeId {
  const bad = (why: string) => invalidArgument(`volume_id ${JSON.stringify(id)} is not a valid nfs1 volume ID: ${why}`);
  const parts = id.split(":");
  if (parts.length !== 5) throw bad("it must have 5 ':'-separated fields");
  const [, letter, rawServer, rawShare, rawSub] = parts as [string, string, string, string, string];
  const onDelete = ON_DELETE.find((o) => ON_DELETE_LETTER[o] === letter);
  if (!onDelete) throw bad(`unknown onDelete letter ${JSON.stringify(letter)}`);
  const { server, share } = decodeShare(rawServer, rawShare, bad);
  if (rawSub.startsWith("#")) {
    const key = rawSub.slice(1);
    if (!/^[0-9a-f]{32}$/.test(key)) throw bad("the record key must be 32 hex digits");
    return { form: "record", onDelete, share: { server, share }, key };
  }
  const subDir = decodePart(rawSub);
  if (subDir === undefined) throw bad("subDir is not canonically encoded");
  const subProblem = subDirProblem(subDir);
  if (subProblem) throw bad(subProblem);
  const location = { server, share, subDir };
  return { form: "inline", onDelete, location, key: locationKey(location) };
}

/** Why `server` is not a host name or IP address, or undefined. */
export function serverProblem(server: string): string | undefined {
  if (server === "") return undefined;
  if (server.length > 253) return "server is longer than 253 characters";
  const host = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
  const ipv6 = /^[0-9A-Fa-f:.]+$/;
  if (host.test(server) || (server.includes(":") && ipv6.test(server))) return undefined;
  return `server ${JSON.stringify(server)} is not a host name or an IP address`;
}

/** Why `share` is not a normal absolute path, or undefined. */
export function sharePathProblem(share: string): string | undefined {
  if (!share.startsWith("/")) return `share ${JSON.stringify(share)} must be an absolute path`;
  if (share !== "/" && (share.endsWith("/") || path.posix.normalize(share) !== share)) {
    return `share ${JSON.stringify(share)} must be a normalised path (no "//", ".", ".." or trailing "/")`;
  }
  if (share.includes("\0") || /[\n\r]/.test(share)) return "share contains a NUL or line break";
  return undefined;
}

/** Why `subDir` is not a relative path of ordinary components, or undefined. */
export function subDirProblem(subDir: string): string | undefined {
  if (subDir === "") return "subDir is empty";
  if (Buffer.byteLength(subDir) > 1024) return "subDir is longer than 1024 bytes";
  if (subDir.startsWith("/")) return `subDir ${JSON.stringify(subDir)} must be relative to the share`;
  for (const c of subDir.split("/")) {
    if (c === "" || c === "." || c === "..") return `subDir ${JSON.stringify(subDir)} may not have empty, "." or ".." components`;
    if (c === ".csi-lab") return "subDir may not enter the share's .csi-lab directory (the driver's own)";
    if (/[\0\n\r]/.test(c)) return "subDir contains a NUL or line break";
  }
  return undefined;
}

/** The device string mount(8) takes for an NFS export: host:/path, [v6addr]:/path. */
export function nfsSource(server: string, p: string): string {
  return `${server.includes(":") ? `[${server}]` : server}:${p}`;
}
