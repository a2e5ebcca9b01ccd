/**
 * The hostPath backend: volumes as directories on the node's own disk.
 *
 * Layout under --root (the directory tree is the only state):
 *
 *   volumes/<id>/meta.json   what CreateVolume was asked for (atomic writes)
 *   volumes/<id>/data/       the volume's contents, bind-mounted into pods
 *   .tmp/                    volumes being created; a crash leaves them here
 *   .trash/                  volumes being deleted; likewise
 *
 * Creating a volume builds it completely in .tmp and then renames it into
 * volumes/ in one atomic step, so a kill -9 at any instant leaves either no
 * volume or a whole one. Deleting renames it into .trash first, for the same
 * reason. Leftovers in .tmp and .trash are swept at start-up.
 *
 * The volume ID is derived from the CSI name ("hp-" + 32 hex digits of its
 * SHA-256), so CreateVolume finds an earlier volume of the same name with
 * one stat, whatever the number of volumes: idempotency without an index.
 * IDs are checked against that exact shape before any path is built from
 * them, so no ID can point outside the root.
 */
import { createHash, randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { fsyncDir, readJsonNoFollow, writeFileAtomic } from "./atomic-file";
import { SortedIndex } from "./sorted-index";
import { parseRecord, RECORD_VERSION, type VolumeRecord } from "./volume-record";
import { internal } from "../csi/errors";
import { AccessMode, type CapabilityProfile } from "../csi/capabilities";
import { mountContaining, readMountInfo } from "../mount/mountinfo";

const ID_PREFIX = "hp-";
const ID_PATTERN = /^hp-[0-9a-f]{32}$/;

export type NewVolume = Omit<VolumeRecord, "version" | "volumeId" | "backend" | "createdAt">;

export interface FsUsage {
  totalBytes: number;
  availableBytes: number;
  usedBytes: number;
  totalInodes: number;
  availableInodes: number;
  usedInodes: number;
}

/**
 * What a directory on one node can honestly offer: a mounted file system
 * (no raw block device yet), used from that node only. fs_type is accepted
 * when empty or when it names the file system the root really is on.
 */
function hostPathProfile(rootFsType: string | undefined): CapabilityProfile {
  return {
    accessTypes: new Set(["mount"]),
    accessModes: new Set([
      AccessMode.SINGLE_NODE_WRITER,
      AccessMode.SINGLE_NODE_READER_ONLY,
      AccessMode.SINGLE_NODE_SINGLE_WRITER,
      AccessMode.SINGLE_NODE_MULTI_WRITER,
    ]),
    fsTypes: new Set(rootFsType ? [rootFsType] : []),
    mountGroup: false,
  };
}

export class HostPathStore {
  readonly backend = "hostpath";
  private constructor(
    readonly root: string,
    private readonly index: SortedIndex,
    readonly profile: CapabilityProfile,
  ) {}

  /** Open (and if needed lay out) a root directory; sweep crash leftovers. */
  static async open(root: string): Promise<HostPathStore> {
    const abs = path.resolve(root);
    for (const dir of ["volumes", ".tmp", ".trash"]) await fsp.mkdir(path.join(abs, dir), { recursive: true });
    for (const dir of [".tmp", ".trash"]) {
      for (const leftover of await fsp.readdir(path.join(abs, dir))) {
        await fsp.rm(path.join(abs, dir, leftover), { recursive: true, force: true });
      }
    }
    const ids = (await fsp.readdir(path.join(abs, "volumes"))).filter((n) => ID_PATTERN.test(n));
    const rootFs = mountContaining(await readMountInfo(), await fsp.realpath(abs))?.fsType;
    return new HostPathStore(abs, SortedIndex.from(ids), hostPathProfile(rootFs));
  }

  static isVolumeId(id: string): boolean {
    return ID_PATTERN.test(id);
  }

  idForName(name: string): string {
    return ID_PREFIX + createHash("sha256").update(name).digest("hex").slice(0, 32);
  }

  get count(): number {
    return this.index.size;
  }

  volumeDir(id: string): string {
    if (!ID_PATTERN.test(id)) throw internal(`refusing to build a path from malformed volume id ${JSON.stringify(id)}`);
    return path.join(this.root, "volumes", id);
  }

  /** The directory that holds the volume's contents. */
  dataDir(id: string): string {
    return path.join(this.volumeDir(id), "data");
  }

  /** The record of a volume, or undefined if there is no such volume. */
  async get(id: string): Promise<VolumeRecord | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    let raw: unknown;
    try {
      raw = await readJsonNoFollow(path.join(this.volumeDir(id), "meta.json"));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        this.index.delete(id); // someone removed it behind our back
        return undefined;
      }
      if (err instanceof SyntaxError) throw internal(`metadata of volume ${id} is not valid JSON`);
      throw err;
    }
    const rec = parseRecord(raw, id);
    if (typeof rec === "string") throw internal(`metadata of volume ${id} is unusable: ${rec}`);
    this.index.add(id);
    return rec;
  }

  /**
   * Create the volume for `spec.name`, or return the one that exists.
   * `created` tells which; the caller decides whether an existing one is
   * compatible with the request.
   */
  async create(spec: NewVolume): Promise<{ record: VolumeRecord; created: boolean }> {
    const id = this.idForName(spec.name);
    const existing = await this.get(id);
    if (existing) return { record: existing, created: false };

    const record: VolumeRecord = {
      version: RECORD_VERSION,
      volumeId: id,
      backend: this.backend,
      createdAt: new Date().toISOString(),
      ...spec,
    };
    const staging = path.join(this.root, ".tmp", `${id}.${randomBytes(4).toString("hex")}`);
    try {
      await fsp.mkdir(path.join(staging, "data"), { recursive: true, mode: 0o755 });
      // Pods run as any user id; like a fresh emptyDir the volume's root
      // is writable by all until a pod's fsGroup narrows it. mkdir's mode
      // is filtered by the umask, hence the explicit chmod.
      await fsp.chmod(path.join(staging, "data"), 0o777);
      await writeFileAtomic(path.join(staging, "meta.json"), JSON.stringify(record, null, 2) + "\n");
      await fsyncDir(staging);
      await fsp.rename(staging, this.volumeDir(id));
      await fsyncDir(path.join(this.root, "volumes"));
    } catch (err) {
      await fsp.rm(staging, { recursive: true, force: true });
      throw err;
    }
    this.index.add(id);
    return { record, created: true };
  }

  /** Replace a volume's metadata (e.g. after expansion). */
  async update(record: VolumeRecord): Promise<void> {
    await writeFileAtomic(path.join(this.volumeDir(record.volumeId), "meta.json"), JSON.stringify(record, null, 2) + "\n");
  }

  /** Delete a volume and its data. Returns false if it did not exist. */
  async delete(id: string): Promise<boolean> {
    if (!ID_PATTERN.test(id)) return false;
    const trash = path.join(this.root, ".trash", `${id}.${randomBytes(4).toString("hex")}`);
    try {
      await fsp.rename(this.volumeDir(id), trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        this.index.delete(id);
        return false;
      }
      throw err;
    }
    this.index.delete(id);
    await fsyncDir(path.join(this.root, "volumes"));
    // fs.rm does not follow symlinks: a link inside the volume is removed,
    // never what it points at.
    await fsp.rm(trash, { recursive: true, force: true });
    return true;
  }

  /** A page of volume IDs after `after`, in ID order. */
  page(after: string, limit: number): { ids: string[]; more: boolean } {
    return this.index.page(after, limit);
  }

  /**
   * Is the volume's data directory still there and a real directory? A
   * volume whose directory vanished, or was replaced by a symlink, is
   * reported abnormal rather than used.
   */
  async condition(id: string): Promise<{ abnormal: boolean; message: string }> {
    try {
      const st = await fsp.lstat(this.dataDir(id));
      if (st.isSymbolicLink()) return { abnormal: true, message: "the volume's data directory has been replaced by a symlink" };
      if (!st.isDirectory()) return { abnormal: true, message: "the volume's data directory is not a directory" };
      return { abnormal: false, message: "volume directory is present" };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        return { abnormal: true, message: "the volume's data directory is missing" };
      }
      return { abnormal: true, message: `the volume's data directory cannot be inspected: ${(err as Error).message}` };
    }
  }

  /** Space and inodes of the file system holding the root. */
  async usage(): Promise<FsUsage> {
    return statfsUsage(this.root);
  }
}

export async function statfsUsage(dir: string): Promise<FsUsage> {
  const s = await fsp.statfs(dir);
  return {
    totalBytes: s.blocks * s.bsize,
    availableBytes: s.bavail * s.bsize,
    usedBytes: (s.blocks - s.bfree) * s.bsize,
    totalInodes: s.files,
    availableInodes: s.ffree,
    usedInodes: s.files - s.ffree,
  };
}
