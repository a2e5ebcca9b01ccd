/**
 * The backends the contract tests run against.
 *
 * A contract test that does not depend on how a backend keeps its volumes
 * (create, delete, validate, list, stage, publish, stats, bad input…)
 * loops over BACKENDS: the same `it`s run with the default hostPath
 * volumes, with shared (nfs) volumes on a local share — a plain directory
 * under the test's scratch directory, standing for an NFS mount every node
 * has — and with memory volumes (a tmpfs each). A new backend is a line here. `b.parameters(d)` are the CreateVolume parameters that
 * select the backend.
 */
import { promises as fsp, mkdirSync } from "node:fs";
import * as path from "node:path";
import { unmount } from "../../src/mount/syscalls";
import type { DriverProcess } from "./harness";

export interface TestBackend {
  name: "hostpath" | "nfs" | "memory";
  /** CreateVolume parameters for this backend on driver `d`. */
  parameters(d: DriverProcess, extra?: Record<string, string>): Record<string, string>;
  /** Can a volume be used from several nodes (MULTI_NODE_* modes)? */
  multiNode: boolean;
  /** Where a directory volume's contents are (made with default parameters). */
  contentDir(d: DriverProcess, volumeId: string): string;
  /** Is that directory the root of a file system of the volume's own (a tmpfs), rather than a directory of the root's? */
  ownFileSystem: boolean;
  /** Take the volume's directory away under the driver (what "its directory has gone" means for this backend). */
  removeContent(d: DriverProcess, volumeId: string): Promise<void>;
}

const removeDir = async (d: DriverProcess, b: { contentDir(d: DriverProcess, id: string): string }, volumeId: string) =>
  fsp.rm(b.contentDir(d, volumeId), { recursive: true });

export const HOSTPATH: TestBackend = {
  name: "hostpath",
  parameters: (_d, extra = {}) => ({ ...extra }),
  multiNode: false,
  contentDir: (d, volumeId) => path.join(d.root, "data", volumeId),
  ownFileSystem: false,
  removeContent: (d, volumeId) => removeDir(d, HOSTPATH, volumeId),
};

export const NFS_LOCAL: TestBackend = {
  name: "nfs",
  parameters: (d, extra = {}) => {
    mkdirSync(d.share, { recursive: true });
    return { backend: "nfs", share: d.share, ...extra };
  },
  multiNode: true,
  // Without subDir, a volume's directory in the share is named after the volume: the ID's last part.
  contentDir: (d, volumeId) => path.join(d.share, volumeId.split(":").at(-1)!),
  ownFileSystem: false,
  removeContent: (d, volumeId) => removeDir(d, NFS_LOCAL, volumeId),
};

export const MEMORY: TestBackend = {
  name: "memory",
  parameters: (_d, extra = {}) => ({ backend: "memory", ...extra }),
  multiNode: false,
  // The volume's tmpfs, mounted under the root.
  contentDir: (d, volumeId) => path.join(d.root, "memory", "data", volumeId),
  ownFileSystem: true,
  // As a reboot would: the tmpfs is gone, and with it the directory.
  async removeContent(d, volumeId) {
    unmount(MEMORY.contentDir(d, volumeId), { detach: true });
    await fsp.rmdir(MEMORY.contentDir(d, volumeId));
  },
};

export const BACKENDS: readonly TestBackend[] = [HOSTPATH, NFS_LOCAL, MEMORY];
