/**
 * Which backend a volume ID belongs to, and the per-volume questions every
 * RPC asks whatever the backend: does it exist, what can it deliver, is it
 * healthy.
 *
 * Both backends live in one driver process; the ID says which one holds a
 * volume, so no request needs to name its backend:
 *
 *   hp-<32 hex>       hostpath: a record in this node's root
 *   nfs<N>:…          shared: a directory on a share (shared/volume-id.ts)
 *   anything else     not ours: NOT_FOUND, or OK where the spec says so
 *                     (DeleteVolume, unpublish/unstage)
 *
 * RPC files route with `volumeRef` and keep one handler recipe; the
 * mechanics are in hostpath-store.ts and shared/shared-store.ts.
 */
import type { CapabilityProfile } from "../csi/capabilities";
import type { Driver } from "../server/driver";
import { HostPathStore } from "./hostpath-store";
import { SHARED_PROFILE } from "./shared/shared-store";
import { parseSharedId, type SharedLocation, type SharedVolumeId } from "./shared/volume-id";
import type { Condition } from "./volume-content";
import type { VolumeRecord } from "./volume-record";

export type VolumeRef =
  | { backend: "hostpath"; volumeId: string }
  | { backend: "nfs"; volumeId: string; id: SharedVolumeId }
  | { backend: undefined; volumeId: string };

/** Route an ID. INVALID_ARGUMENT for a shared ID this driver cannot read (a newer format). */
export function volumeRef(volumeId: string): VolumeRef {
  if (HostPathStore.isVolumeId(volumeId)) return { backend: "hostpath", volumeId };
  const id = parseSharedId(volumeId);
  if (id) return { backend: "nfs", volumeId, id };
  return { backend: undefined, volumeId };
}

type Stores = Pick<Driver, "hostpath" | "shared">;

/** The volume's record, if this controller has one. */
export async function getVolume(driver: Stores, volumeId: string): Promise<VolumeRecord | undefined> {
  const ref = volumeRef(volumeId);
  if (ref.backend === "hostpath") return driver.hostpath.get(volumeId);
  if (ref.backend === "nfs") return driver.shared.getById(volumeId);
  return undefined;
}

/** What the volume can deliver. */
export function profileOf(driver: Stores, record: VolumeRecord): CapabilityProfile {
  return record.shared ? sharedProfile(record.shared) : driver.hostpath.profileOf(record);
}

/**
 * A shared volume's profile. Mount flags: an NFS export is mounted with
 * mount(8), which takes its options (nfsvers=4.1, hard, …); a local share
 * is bind-mounted, which takes only the generic per-mount flags.
 */
export function sharedProfile(loc: { server: string }): CapabilityProfile {
  return loc.server ? { ...SHARED_PROFILE, mountOptions: "filesystem" } : SHARED_PROFILE;
}

/** Is the volume healthy? (For a shared volume: a bounded probe of its directory.) */
export async function conditionOf(driver: Stores, record: VolumeRecord): Promise<Condition> {
  if (record.shared) return driver.shared.condition(locationOf(record)!);
  return driver.hostpath.condition(record.volumeId, record);
}

export function locationOf(record: VolumeRecord): SharedLocation | undefined {
  const s = record.shared;
  return s && { server: s.server, share: s.share, subDir: s.subDir };
}
