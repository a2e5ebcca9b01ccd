/**
 * One workload at a time: SINGLE_NODE_SINGLE_WRITER and friends.
 *
 * ReadWriteOncePod (SINGLE_NODE_SINGLE_WRITER), and the older
 * SINGLE_NODE_WRITER and SINGLE_NODE_READER_ONLY, allow the volume to be
 * published at one target path at a time; a second target is
 * FAILED_PRECONDITION (the spec's NodePublishVolume table). The targets
 * that exist are read from the kernel's mount table, so mounts made before
 * a driver restart count. A second target is refused when any of these
 * says "one workload":
 *   - the access mode of this request;
 *   - the access modes the volume was created for (its metadata): a volume
 *     created only for one-workload modes stays so, before and after a
 *     restart;
 *   - the access mode an existing target was published with, as recorded
 *     in memory (node-records.ts) — lost on restart, which the rule above
 *     covers for volumes made by CreateVolume.
 * When none of the three can say "one workload" (mayRefuseSecondTarget) —
 * Kubernetes' ReadWriteOnce, SINGLE_NODE_MULTI_WRITER, and the multi-node
 * modes — the other targets need not be looked for at all.
 */
import { AccessMode, modeName, type Capability } from "../csi/capabilities";
import type { Driver } from "../server/driver";
import type { VolumeRecord } from "../storage/volume-record";

export const ONE_TARGET: ReadonlySet<AccessMode> = new Set([
  AccessMode.SINGLE_NODE_WRITER,
  AccessMode.SINGLE_NODE_READER_ONLY,
  AccessMode.SINGLE_NODE_SINGLE_WRITER,
]);

/** Was the volume created for access modes that each allow one workload only? */
function createdForOneWorkload(record: Pick<VolumeRecord, "capabilities">): boolean {
  return record.capabilities.length > 0 && record.capabilities.every((c) => ONE_TARGET.has(c.accessMode));
}

/** Why publishing at one more target is refused, or undefined. `otherTargets` are mount points of the volume besides this call's. */
export function secondTargetProblem(driver: Driver, record: Pick<VolumeRecord, "volumeId" | "capabilities">, cap: Capability, otherTargets: readonly string[]): string | undefined {
  if (otherTargets.length === 0) return undefined;
  const where = `volume ${record.volumeId} is already published at ${otherTargets.join(", ")}`;
  if (ONE_TARGET.has(cap.accessMode)) return `${where} and its access mode ${modeName(cap.accessMode)} allows one workload only`;
  if (createdForOneWorkload(record)) {
    const modes = [...new Set(record.capabilities.map((c) => modeName(c.accessMode)))].join(", ");
    return `${where}, and the volume was created for ${modes}, which allows one workload only`;
  }
  for (const target of otherTargets) {
    const rec = driver.nodeRecords.get("publish", target);
    if (rec && ONE_TARGET.has(rec.capability.accessMode)) {
      return `${where} with access mode ${modeName(rec.capability.accessMode)}, which allows one workload only`;
    }
  }
  return undefined;
}

/**
 * Could secondTargetProblem refuse a target at all, whatever else is
 * mounted? Not when the request's mode, the modes the volume was created
 * for and every target recorded for it allow many workloads — Kubernetes'
 * ReadWriteOnce (SINGLE_NODE_MULTI_WRITER) and the multi-node modes. Then
 * the other targets need not be looked up, and the mount table not read.
 */
export function mayRefuseSecondTarget(driver: Driver, record: Pick<VolumeRecord, "volumeId" | "capabilities">, cap: Capability, target: string): boolean {
  if (ONE_TARGET.has(cap.accessMode)) return true;
  if (createdForOneWorkload(record)) return true;
  for (const rec of driver.nodeRecords.publishedTargets(record.volumeId)) {
    if (rec.path !== target && ONE_TARGET.has(rec.capability.accessMode)) return true;
  }
  return false;
}
