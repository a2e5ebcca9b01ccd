/**
 * What the node was asked for, beside what the kernel shows.
 *
 * Whether a path is mounted, from which volume, read-only or with which
 * per-mount flags, is asked of the kernel on every call (statx at the path,
 * or /proc/self/mountinfo) — that is the truth and survives restarts. What
 * the kernel cannot show is the rest of the request that made a mount (its
 * access mode, fs_type, mount group), which NodePublishVolume uses to tell
 * an idempotent retry (same request: OK) from a conflicting one
 * (ALREADY_EXISTS).
 *
 * Those details are kept here, in memory only. Mounts do not survive a
 * reboot, so a durable copy would describe nothing after one; after a mere
 * driver restart the kernel's view is compared alone, which is the
 * lenient side of the same check. The publish records are also indexed by
 * volume: whether any target recorded for a volume allows one workload
 * tells NodePublishVolume whether it must look for the other targets at
 * all (src/node/single-writer.ts). (Writing a file per mount cost more than
 * everything else a publish does on the disks we measured.)
 *
 * A record names a path, and a path is not a mount: the volume's mount
 * there may go by other means (an administrator's umount) and something
 * else be mounted in its place. So where a record is to vouch for a mount
 * (a shared volume's, while its share does not answer), it holds the
 * identity of the mount that was made — its device and root, as the mount
 * table shows them — and vouches for that mount only (vouchesFor).
 */
import type { Capability } from "../csi/capabilities";
import type { MountEntry } from "../mount/mountinfo";

export type RecordKind = "stage" | "publish";

export interface MountRecord {
  volumeId: string;
  path: string;
  capability: Capability;
  readonly: boolean;
  /** The mount made at the path, once it is there: what the record may vouch for. */
  mount?: { device: string; root: string };
}

/** Does `rec` say that `m`, the mount on top at its path, is volume `volumeId`'s? Only the very mount it recorded. */
export function vouchesFor(rec: MountRecord | undefined, volumeId: string, m: MountEntry): boolean {
  return rec !== undefined && rec.volumeId === volumeId && rec.path === m.mountPoint && rec.mount !== undefined && rec.mount.device === m.device && rec.mount.root === m.root;
}

export class NodeRecords {
  private readonly records = { stage: new Map<string, MountRecord>(), publish: new Map<string, MountRecord>() };
  /** Publish records by volume: what a second-target check asks for without reading every mount. */
  private readonly targets = new Map<string, Map<string, MountRecord>>();

  get(kind: RecordKind, p: string): MountRecord | undefined {
    return this.records[kind].get(p);
  }

  put(kind: RecordKind, rec: MountRecord): void {
    if (kind === "publish") this.forget(rec.path);
    this.records[kind].set(rec.path, rec);
    if (kind === "publish") {
      let byPath = this.targets.get(rec.volumeId);
      if (!byPath) this.targets.set(rec.volumeId, (byPath = new Map()));
      byPath.set(rec.path, rec);
    }
  }

  remove(kind: RecordKind, p: string): void {
    if (kind === "publish") this.forget(p);
    this.records[kind].delete(p);
  }

  /** The targets this process published the volume at (and has not unpublished since). */
  publishedTargets(volumeId: string): Iterable<MountRecord> {
    return this.targets.get(volumeId)?.values() ?? [];
  }

  private forget(p: string): void {
    const old = this.records.publish.get(p);
    const byPath = old && this.targets.get(old.volumeId);
    if (!byPath) return;
    byPath.delete(p);
    if (byPath.size === 0) this.targets.delete(old!.volumeId);
  }
}
