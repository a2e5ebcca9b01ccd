/**
 * The driver's shared context: its configuration and where volumes live.
 *
 * Every RPC handler receives this object; handlers hold no state of their
 * own. What must survive a restart is on disk under `root`, so building a
 * Driver is all a restart needs.
 */
import * as os from "node:os";
import * as path from "node:path";
import { Backends } from "../backends";
import { AttachmentStore } from "../storage/attachments";
import type { ShareLocation } from "../backends/nfs/volume-id";
import { DEFAULT_MOUNT_PROGRAM } from "../mount/mount-command";
import { NodeRecords } from "../storage/node-records";
import { SnapshotStore } from "../storage/snapshot-store";
import type { Logger } from "./logger";
import { version } from "./version";

export type Mode = "all" | "controller" | "node";

/**
 * How a volume's size is enforced when its StorageClass does not say
 * (parameter `capacity`): "auto" is quota where the root has quotas and
 * image elsewhere. See docs/capacity.md.
 */
export type DefaultCapacityMode = "auto" | "quota" | "image" | "none";
export const DEFAULT_CAPACITY_MODES: readonly DefaultCapacityMode[] = ["auto", "quota", "image", "none"];

export interface DriverConfig {
  /** The CSI driver name, reverse-DNS; StorageClasses name it as provisioner. */
  driverName: string;
  nodeId: string;
  root: string;
  mode: Mode;
  /** Volumes a node may have published at once; 0 = no limit. */
  maxVolumesPerNode: number;
  /** Size given to a volume when CreateVolume names none. */
  defaultCapacityBytes: number;
  /** Offer ControllerPublish/Unpublish ("attach"); see docs/access.md. */
  enableAttach: boolean;
  defaultCapacityMode: DefaultCapacityMode;
  /** mount(8) for shared volumes, or a stand-in (tests); see mount/mount-command.ts. */
  mountProgram: string;
  /** Deadline of one run of the mount program. */
  mountTimeoutMs: number;
  /** Deadline of one file operation on a share (src/backends/nfs/share-io.ts), and how long a copy there may make no progress (storage/stall-watch.ts). */
  shareTimeoutMs: number;
  /**
   * The kubelet's directories (absolute): every staging and target path a
   * node call names must lie inside one of them (src/node/node-path.ts).
   */
  kubeletDirs: string[];
  /** Shares that nfs volumes may live on (and below); none by default. See docs/security.md. */
  allowedShares: ShareLocation[];
  /** A group (name or id) given access to the unix socket (mode 0660); otherwise 0600, root only. */
  socketGroup: string | undefined;
  /** Accept a tcp:// endpoint that is not loopback. */
  allowNetworkEndpoint: boolean;
}

export const DEFAULT_DRIVER_NAME = "csi-lab.example.org";
export const GiB = 1024 ** 3;

export function defaultConfig(overrides: Partial<DriverConfig> = {}): DriverConfig {
  return {
    driverName: DEFAULT_DRIVER_NAME,
    nodeId: os.hostname(),
    root: ".csi-lab/root",
    mode: "all",
    maxVolumesPerNode: 0,
    defaultCapacityBytes: GiB,
    enableAttach: false,
    defaultCapacityMode: "auto",
    mountProgram: DEFAULT_MOUNT_PROGRAM,
    mountTimeoutMs: 60_000,
    shareTimeoutMs: 30_000,
    kubeletDirs: ["/var/lib/kubelet"],
    allowedShares: [],
    socketGroup: undefined,
    allowNetworkEndpoint: false,
    ...overrides,
  };
}

export interface Driver {
  readonly config: DriverConfig;
  readonly version: string;
  readonly log: Logger;
  /** Where volumes live: every backend (src/backends), by StorageClass and by volume ID. */
  readonly backends: Backends;
  /** Snapshots and group snapshots, beside the volumes under the same root. */
  readonly snapshots: SnapshotStore;
  readonly nodeRecords: NodeRecords;
  /** Which volume is attached to which node (ControllerPublishVolume). */
  readonly attachments: AttachmentStore;
  /** Topology segment key for "this node", e.g. csi-lab.example.org/node. */
  readonly topologyKey: string;
  /** Why this process cannot mount (no CAP_SYS_ADMIN), if so: Probe answers not ready with it. */
  readonly mountProblem: string | undefined;
}

export async function openDriver(config: DriverConfig, log: Logger, opts: { mountProblem?: string } = {}): Promise<Driver> {
  const root = path.resolve(config.root);
  const resolved = { ...config, root };
  // The backends first: the hostPath backend lays out the root.
  const backends = await Backends.open(resolved, log);
  const snapshots = await SnapshotStore.open(root);
  for (const mountPoint of snapshots.thawedAtStart) log.warn("thawed a file system a crash had left frozen for a copy", { mountPoint });
  for (const u of snapshots.unreadableAtStart) log.warn("a snapshot's record cannot be read: it is left out of ListSnapshots, and its content is kept", u);
  for (const l of snapshots.leftAtStart) log.warn("a leftover of an interrupted snapshot call could not be removed: it stays, and the next start tries again", l);
  const foreign = "an entry of the snapshots' data directory that no snapshot record names was left as it is: the driver removes only what it made";
  for (const l of snapshots.foreignAtStart) log.warn(foreign, l);
  const nodeRecords = new NodeRecords();
  const { store: attachments, problems } = await AttachmentStore.open(root, async (id) => {
    const b = backends.forId(id);
    // A volume another controller may hold (a shared one) need not have its record here.
    return b !== undefined && (b.heldElsewhere || (await b.get(id)) !== undefined);
  });
  for (const problem of problems) log.warn("ignoring an unreadable attachment record", { problem });
  return {
    config: resolved,
    version,
    log,
    backends,
    snapshots,
    nodeRecords,
    attachments,
    topologyKey: `${config.driverName}/node`,
    mountProblem: opts.mountProblem,
  };
}
