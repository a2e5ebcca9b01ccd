/**
 * Ephemeral inline volumes: the CSI form of an emptyDir.
 *
 * A pod can name a CSI driver directly in its `volumes:` (a `csi:` volume
 * with `volumeAttributes`). There is no PVC and no CreateVolume: the
 * kubelet calls NodePublishVolume with volume_context
 * "csi.storage.k8s.io/ephemeral": "true", no staging path, and a volume_id
 * of its own making; when the pod goes, NodeUnpublishVolume. The driver
 * makes the volume on the first call and removes it on the last.
 *
 * Crash safety comes from the store: the volume is created with the same
 * two-phase commit as any other and named from the kubelet's volume_id
 * (ephemeral-volumes.ts), so a retried publish finds the volume a crash
 * left behind, and a retried unpublish deletes what an interrupted one did
 * not. The volume is deleted only once no mount of it is left.
 *
 * Attributes (volumeAttributes in the pod spec):
 *   size   the volume's size: bytes, or a Kubernetes quantity ("64Mi", "1Gi")
 *   mode   the root directory's permission bits, as the mutable parameter
 * Keys under csi.storage.k8s.io/ are the kubelet's (pod name, namespace,
 * service account) and are accepted. Anything else is INVALID_ARGUMENT.
 */
import type { Capability } from "../csi/capabilities";
import { alreadyExists, invalidArgument, outOfRange } from "../csi/errors";
import { applyMutableParameters, checkMutableParameters, sameMutableParameters } from "../controller/mutable-parameters";
import { PROVISIONER_PREFIX } from "../controller/parameters";
import { nodeTopology, volumeKey } from "../controller/volume-view";
import { mountsOfDir } from "../mount/volume-mounts";
import type { Driver } from "../server/driver";
import { ephemeralName, isEphemeralRecord } from "../storage/ephemeral-volumes";
import { HostPathStore } from "../storage/hostpath-store";
import { findVolume, type NodeVolume } from "./staged-volume";

export const EPHEMERAL_KEY = "csi.storage.k8s.io/ephemeral";

export function isEphemeralRequest(volumeContext: Record<string, string>): boolean {
  return volumeContext[EPHEMERAL_KEY] === "true";
}

/** The store's ID for a volume_id: ours as is, or the inline volume named after the kubelet's. */
export function storeVolumeId(driver: Driver, volumeId: string): string {
  return HostPathStore.isVolumeId(volumeId) ? volumeId : driver.hostpath.idForName(ephemeralName(volumeId));
}

/**
 * Lock keys for a node call on `volumeId`: the ID itself and, for an
 * inline volume, its store ID, which the controller RPCs lock under.
 * (Called before validation: an oversized ID is not worth hashing.)
 */
export function nodeLockKeys(driver: Driver, volumeId: string | undefined): string[] {
  if (!volumeId || volumeId.length > 128) return volumeKey(volumeId);
  const id = storeVolumeId(driver, volumeId);
  return id === volumeId ? volumeKey(volumeId) : [...volumeKey(volumeId), ...volumeKey(id)];
}

const UNITS: Record<string, number> = {
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};

/** A size in bytes from "1073741824", "1Gi", "500M"; undefined if it is not one. */
export function parseQuantity(text: string): number | undefined {
  const m = /^([0-9]+)(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(text);
  if (!m) return undefined;
  const bytes = Number(m[1]) * UNITS[m[2] ?? ""]!;
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

interface EphemeralAttributes {
  sizeBytes: number;
  mutableParameters: Record<string, string>;
}

export function checkEphemeralAttributes(volumeContext: Record<string, string>, defaultBytes: number): EphemeralAttributes {
  let sizeBytes = defaultBytes;
  const mutable: Record<string, string> = {};
  for (const [k, v] of Object.entries(volumeContext)) {
    if (k.startsWith(PROVISIONER_PREFIX)) continue;
    if (k === "size") {
      const parsed = parseQuantity(v);
      if (parsed === undefined) throw invalidArgument(`volume_context size ${JSON.stringify(v)} must be a positive number of bytes or a quantity such as "64Mi"`);
      sizeBytes = parsed;
    } else if (k === "mode") {
      mutable[k] = v;
    } else {
      throw invalidArgument(`unknown volume_context key ${JSON.stringify(k)} for an ephemeral inline volume (known: size, mode)`);
    }
  }
  return { sizeBytes, mutableParameters: checkMutableParameters(mutable, "volume_context") };
}

/**
 * Make (or find) the inline volume for `volumeId` and return it as the
 * node sees it; the caller publishes it at the target.
 */
export async function prepareEphemeral(
  driver: Driver,
  req: { volumeId: string; cap: Capability; volumeContext: Record<string, string>; stagingTargetPath: string | undefined },
): Promise<{ vol: NodeVolume; created: boolean }> {
  if (req.stagingTargetPath) throw invalidArgument("an ephemeral inline volume is not staged: staging_target_path must be empty");
  const attrs = checkEphemeralAttributes(req.volumeContext, driver.config.defaultCapacityBytes);
  const total = (await driver.hostpath.usage()).totalBytes;
  if (attrs.sizeBytes > total) {
    throw outOfRange(`an inline volume of ${attrs.sizeBytes} bytes cannot fit on this node's file system (${total} bytes in all)`);
  }
  const { record, created } = await driver.hostpath.create({
    name: ephemeralName(req.volumeId),
    capacityBytes: attrs.sizeBytes,
    capabilities: [req.cap],
    parameters: {},
    mutableParameters: attrs.mutableParameters,
    topology: nodeTopology(driver).segments ?? {},
  });
  if (!created && (record.capacityBytes !== attrs.sizeBytes || !sameMutableParameters(record.mutableParameters, attrs.mutableParameters))) {
    throw alreadyExists(`inline volume ${req.volumeId} already exists with a different size or mode`);
  }
  applyMutableParameters(driver, record, record.mutableParameters);
  return { vol: await findVolume(driver, record.volumeId), created };
}

/**
 * After a target of `volumeId` was unpublished, or a first publish failed:
 * if it names an inline volume and nothing mounts that volume any more,
 * delete it.
 */
export async function removeEphemeralIfUnused(driver: Driver, volumeId: string): Promise<boolean> {
  if (HostPathStore.isVolumeId(volumeId)) return false;
  const id = storeVolumeId(driver, volumeId);
  const record = await driver.hostpath.get(id);
  if (!record || !isEphemeralRecord(record)) return false;
  if (mountsOfDir(driver.hostpath.dataDir(id)).mounts.length > 0) return false;
  await driver.hostpath.delete(id);
  return true;
}
