/**
 * Checks the node RPCs share: the volume exists, the capability is one it
 * can deliver, and what the kernel shows at a staging or target path.
 */
import { toCapability, unsupportedReason, type Capability } from "../csi/capabilities";
import { failedPrecondition, invalidArgument, notFound } from "../csi/errors";
import type { VolumeCapability } from "../gen/csi";
import { parseBindFlags, type BindFlags } from "../mount/options";
import { mountsOfDir, type DirMounts } from "../mount/volume-mounts";
import type { Driver } from "../server/driver";
import type { VolumeRecord } from "../storage/volume-record";

export interface NodeVolume {
  record: VolumeRecord;
  dataDir: string;
  /** Where the kernel shows the volume's directory mounted, right now. */
  mounts: DirMounts;
}

export async function findVolume(driver: Driver, volumeId: string): Promise<NodeVolume> {
  const record = await driver.hostpath.get(volumeId);
  if (!record) throw notFound(`volume ${volumeId} does not exist on this node`);
  const dataDir = driver.hostpath.dataDir(volumeId);
  const condition = await driver.hostpath.condition(volumeId);
  if (condition.abnormal) throw failedPrecondition(`volume ${volumeId} cannot be used: ${condition.message}`);
  return { record, dataDir, mounts: mountsOfDir(dataDir) };
}

/**
 * A node call's capability: malformed → INVALID_ARGUMENT; well-formed but
 * beyond what the volume can do → FAILED_PRECONDITION (the spec's
 * "exceeds capabilities" for node calls).
 */
export function nodeCapability(driver: Driver, cap: VolumeCapability | undefined): { cap: Capability; flags: BindFlags } {
  const c = toCapability(cap, "volume_capability");
  const flags = parseBindFlags(c.mountFlags);
  if (typeof flags === "string") throw invalidArgument(flags);
  const why = unsupportedReason(c, driver.hostpath.profile);
  if (why) throw failedPrecondition(why);
  return { cap: c, flags };
}
