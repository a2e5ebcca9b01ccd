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
 * Which backend keeps inline volumes, and how, is its business
 * (Backend.ephemeral; the hostPath backend's ephemeral.ts): it must make
 * them crash-safely under an ID derived from the kubelet's, so a retried
 * publish finds the volume a crash left behind and a retried unpublish
 * deletes what an interrupted one did not. Here: the attributes and the
 * locks.
 *
 * Attributes (volumeAttributes in the pod spec):
 *   size   the volume's size: bytes, or a Kubernetes quantity ("64Mi", "1Gi");
 *          without it, the size the backend gives a volume asked for none
 *   mode   the root directory's permission bits, as the mutable parameter
 * Keys under csi.storage.k8s.io/ are the kubelet's (pod name, namespace,
 * service account) and are accepted. Anything else is INVALID_ARGUMENT.
 */
import { invalidArgument } from "../csi/errors";
import { checkMutableParameters } from "../controller/mutable-parameters";
import { PROVISIONER_PREFIX } from "../controller/parameters";
import { volumeKey } from "../controller/volume-view";
import type { Driver } from "../server/driver";

export const EPHEMERAL_KEY = "csi.storage.k8s.io/ephemeral";

export function isEphemeralRequest(volumeContext: Record<string, string>): boolean {
  return volumeContext[EPHEMERAL_KEY] === "true";
}

/** The ID the backend of inline volumes keeps `volumeId` under (itself for any other volume). */
export function storeVolumeId(driver: Driver, volumeId: string): string {
  return driver.backends.forId(volumeId) ? volumeId : (driver.backends.ephemeral?.storeId(volumeId) ?? volumeId);
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
  /** The size asked for; undefined when the pod names none. */
  sizeBytes: number | undefined;
  mutableParameters: Record<string, string>;
}

export function checkEphemeralAttributes(volumeContext: Record<string, string>): EphemeralAttributes {
  let sizeBytes: number | undefined;
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
