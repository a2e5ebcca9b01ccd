/**
 * CreateVolume: make a new, empty volume.
 *
 * The call is idempotent by name: the CO retries after timeouts and
 * crashes, and each retry must return the same volume, not make another.
 * The name decides the volume ID, so a retry finds the earlier volume; if
 * it exists but was made with a different size, capability, parameters or
 * source, the answer is ALREADY_EXISTS — the CO must not be handed a
 * volume it did not ask for.
 */
import type { CreateVolumeRequest, CreateVolumeResponse } from "../gen/csi";
import { requireSupported, toCapabilities } from "../csi/capabilities";
import { alreadyExists, outOfRange, resourceExhausted } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { checkRange, chooseSize, fits } from "./capacity";
import { applyMutableParameters, checkMutableParameters, sameMutableParameters } from "./mutable-parameters";
import { contentSourceKeys, describeSource, planContentSource, sameSource, sizeWithSource } from "./content-source";
import { checkParameters, defining } from "./parameters";
import { topologyProblem } from "./topology";
import { nodeTopology, toCsiVolume, volumeKey } from "./volume-view";

export const createVolume = defineRpc<CreateVolumeRequest, CreateVolumeResponse>({
  lockKeys: (req, driver) => [
    ...(req.name ? volumeKey(driver.hostpath.idForName(req.name)) : []),
    ...contentSourceKeys(req.volumeContentSource),
  ],

  async handle(req, { driver }) {
    const store = driver.hostpath;
    const name = checkToken(req.name, "name");
    const caps = toCapabilities(req.volumeCapabilities, "volume_capabilities");
    requireSupported(caps, store.profile);
    const parameters = checkParameters(req.parameters);
    const mutableParameters = checkMutableParameters(req.mutableParameters);
    checkMap(req.secrets, "secrets");
    const range = checkRange(req.capacityRange);
    const where = topologyProblem(req.accessibilityRequirements, driver);
    if (where) throw resourceExhausted(where);
    const source = await planContentSource(req.volumeContentSource, driver, name);

    const size = source
      ? sizeWithSource(range, driver.config.defaultCapacityBytes, source.minBytes)
      : chooseSize(range, driver.config.defaultCapacityBytes);
    const fsTotal = (await store.usage()).totalBytes;
    if (size > fsTotal) {
      throw outOfRange(`a volume of ${size} bytes cannot fit on this node's file system (${fsTotal} bytes in all)`);
    }

    const { record, created } = await store.create({
      name,
      capacityBytes: size,
      capabilities: caps,
      parameters,
      mutableParameters,
      topology: nodeTopology(driver).segments ?? {},
      ...(source ? { contentSource: source.contentSource } : {}),
    }, source?.fill);
    if (!created) {
      if (!fits(record.capacityBytes, range)) {
        throw alreadyExists(
          `volume ${JSON.stringify(name)} already exists with ${record.capacityBytes} bytes, outside the requested range ` +
            `[${range.required}, ${range.limit || "no limit"}]`,
        );
      }
      if (defining(record.parameters) !== defining(parameters)) {
        throw alreadyExists(`volume ${JSON.stringify(name)} already exists with different parameters`);
      }
      if (!sameMutableParameters(record.mutableParameters, mutableParameters)) {
        throw alreadyExists(`volume ${JSON.stringify(name)} already exists with different mutable_parameters`);
      }
      if (!sameSource(record.contentSource, source?.contentSource)) {
        throw alreadyExists(
          `volume ${JSON.stringify(name)} already exists with ${describeSource(record.contentSource)}, not ${describeSource(source?.contentSource)}`,
        );
      }
    }
    // Also on a retry: the volume converges to its record even if a crash
    // came between the commit and this step.
    applyMutableParameters(driver, record.volumeId, record.mutableParameters);
    return { volume: toCsiVolume(record) };
  },
});
