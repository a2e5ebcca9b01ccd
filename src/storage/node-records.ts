/**
 * What the node was asked for, beside what the kernel shows.
 *
 * Whether a path is mounted, from which volume, read-only or with which
 * per-mount flags, is read from /proc/self/mountinfo on every call — that
 * is the truth and survives restarts. What the kernel cannot show is the
 * rest of the request that made a mount (its access mode, fs_type, mount
 * group), which NodePublishVolume uses to tell an idempotent retry (same
 * request: OK) from a conflicting one (ALREADY_EXISTS).
 *
 * Those details are kept here, in memory only. Mounts do not survive a
 * reboot, so a durable copy would describe nothing after one; after a mere
 * driver restart the kernel's view is compared alone, which is the
 * lenient side of the same check. (Writing a file per mount cost more than
 * everything else a publish does on the disks we measured.)
 */
import type { Capability } from "../csi/capabilities";

export type RecordKind = "stage" | "publish";

export interface MountRecord {
  volumeId: string;
  path: string;
  capability: Capability;
  readonly: boolean;
}

export class NodeRecords {
  private readonly records = { stage: new Map<string, MountRecord>(), publish: new Map<string, MountRecord>() };

  get(kind: RecordKind, p: string): MountRecord | undefined {
    return this.records[kind].get(p);
  }

  put(kind: RecordKind, rec: MountRecord): void {
    this.records[kind].set(rec.path, rec);
  }

  remove(kind: RecordKind, p: string): void {
    this.records[kind].delete(p);
  }
}
