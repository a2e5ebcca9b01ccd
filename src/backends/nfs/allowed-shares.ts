/**
 * Which shares the driver may use: the administrator's list.
 *
 * A shared volume's ID names its share and directory (volume-id.ts), so an
 * ID alone could point the driver anywhere — at "/etc" on the node, or at
 * another tenant's directory on the export. The driver therefore uses only
 * shares the administrator listed with --allow-share (and directories below
 * them); every request naming another share, from a StorageClass or inside
 * an ID, is refused before anything on it is touched. "/" and the system's
 * own directories can never be listed (driver-flags.ts).
 */
import { isAtOrUnder } from "../../csi/system-paths";
import { describeShare } from "./share-mounts";
import type { ShareLocation } from "./volume-id";

export function isShareAllowed(allowed: readonly ShareLocation[], s: ShareLocation): boolean {
  return allowed.some((a) => a.server.toLowerCase() === s.server.toLowerCase() && isAtOrUnder(s.share, a.share));
}

/** Why `s` may not be used, or undefined. */
export function shareNotAllowed(allowed: readonly ShareLocation[], s: ShareLocation): string | undefined {
  if (isShareAllowed(allowed, s)) return undefined;
  const listed = allowed.length === 0 ? "none are allowed" : `allowed: ${allowed.map((a) => (a.server ? `${a.server}:${a.share}` : a.share)).join(", ")}`;
  return `${describeShare(s)} is not a share this driver may use (${listed}; flag --allow-share)`;
}
