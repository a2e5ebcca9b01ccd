/**
 * The backends the contract tests run against.
 *
 * A contract test that does not depend on how a backend keeps its volumes
 * (create, delete, validate, list, stage, publish, stats, bad input…)
 * loops over BACKENDS: the same `it`s run once with the default hostPath
 * volumes and once with shared (nfs) volumes on a local share — a plain
 * directory under the test's scratch directory, standing for an NFS mount
 * every node has. `b.parameters(d)` are the CreateVolume parameters that
 * select the backend.
 */
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import type { DriverProcess } from "./harness";

export interface TestBackend {
  name: "hostpath" | "nfs";
  /** CreateVolume parameters for this backend on driver `d`. */
  parameters(d: DriverProcess, extra?: Record<string, string>): Record<string, string>;
  /** Can a volume be used from several nodes (MULTI_NODE_* modes)? */
  multiNode: boolean;
  /** Where a directory volume's contents are (made with default parameters). */
  contentDir(d: DriverProcess, volumeId: string, name: string): string;
}

export const HOSTPATH: TestBackend = {
  name: "hostpath",
  parameters: (_d, extra = {}) => ({ ...extra }),
  multiNode: false,
  contentDir: (d, volumeId) => path.join(d.root, "data", volumeId),
};

export const NFS_LOCAL: TestBackend = {
  name: "nfs",
  parameters: (d, extra = {}) => {
    mkdirSync(d.share, { recursive: true });
    return { backend: "nfs", share: d.share, ...extra };
  },
  multiNode: true,
  // Without subDir, a volume's directory in the share is named after the volume.
  contentDir: (d, _volumeId, name) => path.join(d.share, name),
};

export const BACKENDS: readonly TestBackend[] = [HOSTPATH, NFS_LOCAL];
