/** What a memory volume can deliver: a mounted tmpfs, used from this node only. */
import { SINGLE_NODE_MODES, type CapabilityProfile } from "../../csi/capabilities";

export const MEMORY_PROFILE: CapabilityProfile = {
  accessTypes: new Set(["mount"]),
  accessModes: SINGLE_NODE_MODES,
  fsTypes: new Set(["tmpfs"]),
  mountGroup: true, // the tmpfs root's group and setgid bit carry a pod's fsGroup
};
