/**
 * What the node was asked for, beside what the kernel shows.
 *
 * Whether a path is mounted, from which volume, read-only or not, is read
 * from /proc/self/mountinfo on every call. What the kernel cannot tell is
 * the rest of the request that made the mount — its access mode, mount
 * group, mount flags as words — which NodePublishVolume needs to tell an
 * idempotent retry (same request: OK) from a conflicting one (different
 * request on the same target: ALREADY_EXISTS). That part is kept here, one
 * small atomically written file per staging or target path, and is only
 * trusted while the kernel still shows the mount it describes.
 */
import { createHash } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import type { Capability } from "../csi/capabilities";
import { readJsonNoFollow, writeFileAtomic } from "./atomic-file";

export type RecordKind = "stage" | "publish";

export interface MountRecord {
  volumeId: string;
  path: string;
  capability: Capability;
  readonly: boolean;
}

export class NodeRecords {
  private constructor(private readonly dir: string) {}

  static async open(root: string): Promise<NodeRecords> {
    const dir = path.join(root, "node");
    await fsp.mkdir(path.join(dir, "stage"), { recursive: true });
    await fsp.mkdir(path.join(dir, "publish"), { recursive: true });
    return new NodeRecords(dir);
  }

  private file(kind: RecordKind, p: string): string {
    return path.join(this.dir, kind, createHash("sha256").update(p).digest("hex") + ".json");
  }

  async get(kind: RecordKind, p: string): Promise<MountRecord | undefined> {
    try {
      const rec = (await readJsonNoFollow(this.file(kind, p))) as MountRecord;
      return rec.path === p ? rec : undefined;
    } catch {
      return undefined; // missing or unreadable: the kernel's view decides alone
    }
  }

  async put(kind: RecordKind, rec: MountRecord): Promise<void> {
    await writeFileAtomic(this.file(kind, rec.path), JSON.stringify(rec) + "\n");
  }

  async remove(kind: RecordKind, p: string): Promise<void> {
    await fsp.rm(this.file(kind, p), { force: true });
  }
}
