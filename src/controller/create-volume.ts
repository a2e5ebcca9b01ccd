/**
 * CreateVolume: make a new, empty volume.
 *
 * The call is idempotent by name: the CO retries after timeouts and
 * crashes, and each retry must return the same volume, not make another.
 * The name decides the volume ID, so a retry finds the earlier volume; if
 * it exists but was made with a different size, capability, parameters or
 * source — or under another name, where an ID is not the name's alone (a
 * shared volume's is its directory) — the answer is ALREADY_EXISTS: the CO
 * must not be handed a volume it did not ask for. Mutable parameters are
 * compared with those the volume was made with: ControllerModifyVolume may
 * have changed them since, and the CO's retry still sends the first ones.
 *
 * The StorageClass parameter `backend` picks where the volume lives
 * (src/backends): how it is kept there, whether its size is a promise the
 * node must be able to keep (RESOURCE_EXHAUSTED when it cannot), where it
 * can be used from, is the backend's business. This handler keeps the CSI
 * part: validation, the lock, the retry, the content source.
 */
import type { CreateVolumeRequest, CreateVolumeResponse } from "../gen/csi";
import { requireSupported, toCapabilities, unsupportedReason, type Capability } from "../csi/capabilities";
import { alreadyExists } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import type { Driver } from "../server/driver";
import { createdMutableParameters, type ContentSource, type VolumeRecord } from "../storage/volume-record";
import type { Backend } from "../backends/backend";
import { checkRange, fits, type Range } from "./capacity";
import { checkMutableParameters, sameMutableParameters } from "./mutable-parameters";
import { contentSourceKeys, describeSource, planContentSource, requestedSource, sameSource } from "./content-source";
import { checkParameters, defining } from "./parameters";
import { reachableFromRequisite } from "./topology";
import { toCsiVolume, volumeKey } from "./volume-view";

export const createVolume = defineRpc<CreateVolumeRequest, CreateVolumeResponse>({
  lockKeys: (req, driver) => [...(req.name ? volumeKey(lockId(driver, req)) : []), ...contentSourceKeys(req.volumeContentSource)],

  async handle(req, { driver, signal, log }) {
    const name = checkToken(req.name, "name");
    const caps = toCapabilities(req.volumeCapabilities, "volume_capabilities");
    const parameters = checkParameters(driver, req.parameters);
    const mutableParameters = checkMutableParameters(req.mutableParameters);
    checkMap(req.secrets, "secrets");
    const range = checkRange(req.capacityRange);
    const backend = driver.backends.forParameters(parameters);
    requireSupported(caps, backend.anyProfile);

    // A retry finds its volume before anything else is decided: the node
    // may have filled up since, or the source been deleted, which must not
    // fail a volume already made.
    const request = { name, caps, range, parameters, mutableParameters, source: requestedSource(req.volumeContentSource) };
    const existing = await backend.get(backend.idFor(name, parameters));
    if (existing) {
      checkCompatible(existing, request, backend);
      const accessible = backend.topology(driver, existing);
      // A volume any node can reach (a shared one) is made whatever the requisite says, so its retry is answered alike.
      if (!backend.heldElsewhere && !reachableFromRequisite(accessible, req.accessibilityRequirements)) {
        throw alreadyExists(`volume ${JSON.stringify(name)} already exists where the requisite topologies do not reach: ${JSON.stringify(accessible)}`);
      }
      // The volume converges to its record even if a crash came between the commit and this step.
      await backend.converge(driver, existing);
      return { volume: toCsiVolume(driver, backend, existing) };
    }
    for (const other of driver.backends.all) {
      if (other !== backend && (await other.holdsName(name))) throw alreadyExists(`volume ${JSON.stringify(name)} already exists on backend ${other.name}`);
    }
    const source = await planContentSource(req.volumeContentSource, driver, { signal, log });
    const record = await backend.create(driver, { name, caps, range, parameters, mutableParameters, accessibility: req.accessibilityRequirements, source }, { signal, log });
    return { volume: toCsiVolume(driver, backend, record) };
  },
});

/** The ID the request's volume gets, for its lock; parameters that cannot make one lock by name (the call then fails validation). */
function lockId(driver: Driver, req: CreateVolumeRequest): string {
  try {
    const params = req.parameters ?? {};
    return driver.backends.forParameters(params).idFor(req.name!, params);
  } catch {
    return `name ${req.name}`;
  }
}

interface Request {
  name: string;
  caps: readonly Capability[];
  range: Range;
  parameters: Record<string, string>;
  mutableParameters: Record<string, string>;
  source: ContentSource | undefined;
}

/** An existing volume of the same name must be one the request could have made. */
function checkCompatible(record: VolumeRecord, req: Request, backend: Backend): void {
  const name = JSON.stringify(req.name);
  // An ID need not come from the name alone (a shared volume's is its directory): another
  // name's volume is not this request's, and handing it out would let one claim's
  // DeleteVolume take the other's data.
  if (record.name !== req.name) {
    throw alreadyExists(
      `volume ${name} would be ${record.volumeId}, which is already volume ${JSON.stringify(record.name)} ` +
        "(for a shared volume: its subDir is the same directory; give every claim its own subDir)",
    );
  }
  const why = req.caps.map((c) => unsupportedReason(c, backend.profile(record))).find((r) => r !== undefined);
  if (why) throw alreadyExists(`volume ${name} already exists and cannot be used so: ${why}`);
  if (!fits(record.capacityBytes, req.range)) {
    throw alreadyExists(
      `volume ${name} already exists with ${record.capacityBytes} bytes, outside the requested range ` +
        `[${req.range.required}, ${req.range.limit || "no limit"}]`,
    );
  }
  if (defining(record.parameters) !== defining(req.parameters)) {
    throw alreadyExists(`volume ${name} already exists with different parameters`);
  }
  // What CreateVolume asked for, not what ControllerModifyVolume made of it since (the retry still asks for the first).
  if (!sameMutableParameters(createdMutableParameters(record), req.mutableParameters)) {
    throw alreadyExists(`volume ${name} already exists with different mutable_parameters`);
  }
  if (!sameSource(record.contentSource, req.source)) {
    throw alreadyExists(`volume ${name} already exists with ${describeSource(record.contentSource)}, not ${describeSource(req.source)}`);
  }
}
