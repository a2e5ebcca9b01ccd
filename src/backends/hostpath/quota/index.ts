/**
 * Which quota mechanism, if any, the root's file system offers.
 *
 * Decided once at start-up from what the kernel reports: the file system
 * type and super-block options of the mount holding the root
 * (/proc/self/mountinfo), then a real call to check the kernel answers —
 * a kernel built without CONFIG_XFS_QUOTA mounts XFS without quotas even
 * when asked, and some refuse the mount outright.
 */
import { closeSync, openSync } from "node:fs";
import { DIR_FLAGS } from "../../../mount/ioctl";
import type { MountEntry } from "../../../mount/mountinfo";
import { BtrfsQgroups, btrfsFsid } from "./btrfs-qgroup";
import { ProjectQuota } from "./project-quota";
import type { QuotaBackend } from "./quota-backend";

export type { QuotaBackend, QuotaInfo, QuotaUsage } from "./quota-backend";

export interface QuotaDetection {
  backend: QuotaBackend | undefined;
  /** Why there is none, for the start-up log and error messages. */
  reason: string;
}

export function detectQuota(root: string, mount: MountEntry | undefined): QuotaDetection {
  const fs = mount?.fsType ?? "unknown";
  if (fs === "btrfs") {
    const fsid = btrfsFsid(root);
    return BtrfsQgroups.enabled(fsid)
      ? { backend: new BtrfsQgroups(fsid, root), reason: "" }
      : { backend: undefined, reason: "the root is on btrfs with quotas off (btrfs quota enable turns them on)" };
  }
  if (fs === "xfs" || fs === "ext4") {
    const opts = mount!.superOptions;
    // XFS lists "prjquota" when project quotas are enforced ("pqnoenforce"
    // when only counted); ext4 lists "prjquota".
    if (!opts.includes("prjquota") && !opts.includes("pquota")) {
      return { backend: undefined, reason: `the root is on ${fs} mounted without prjquota` };
    }
    const fd = openSync(root, DIR_FLAGS);
    if (!ProjectQuota.probe(fd)) {
      closeSync(fd);
      return { backend: undefined, reason: `the root is on ${fs} with prjquota, but the kernel does not answer project quota calls` };
    }
    return { backend: new ProjectQuota(fd, fs), reason: "" };
  }
  return { backend: undefined, reason: `the root is on ${fs}, which has no project quotas this driver can use` };
}
