/**
 * What a shared volume can be: the capability profile of the nfs backend.
 *
 * A directory on a share can be mounted on any node by any number of
 * writers at once (ReadWriteMany), but it is never a raw block device.
 */
import { MULTI_NODE_MODES, SINGLE_NODE_MODES, type CapabilityProfile } from "../../csi/capabilities";

/** A shared volume can be mounted anywhere, by any number of writers; never as a raw block device. */
export const SHARED_PROFILE: CapabilityProfile = {
  accessTypes: new Set(["mount"]),
  accessModes: new Set([...SINGLE_NODE_MODES, ...MULTI_NODE_MODES]),
  fsTypes: new Set(["nfs", "nfs4"]),
  mountGroup: true,
};

/**
 * A shared volume's profile. Mount flags: an NFS export is mounted with
 * mount(8), which takes its options (nfsvers=4.1, hard, …); a local share
 * is bind-mounted, which takes only the generic per-mount flags.
 */
export function sharedProfile(loc: { server: string }): CapabilityProfile {
  return loc.server ? { ...SHARED_PROFILE, mountOptions: "filesystem" } : SHARED_PROFILE;
}
