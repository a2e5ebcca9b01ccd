/**
 * CreateVolume: make a new, empty volume.
 *
 * The call is idempotent by name: the CO retries after timeouts and
 * crashes, and each retry must return the same volume, not make another.
 * The name decides the volume ID, so a retry finds the earlier volume; if
 * it exists but was made with a different size, capability, parameters or
 * source, the answer is ALREADY_EXISTS — the CO must not be handed a
 * volume it did not ask for.
 *
 * How the new volume is kept — a directory with or without a quota, an
 * image file, a block device — follows its parameters and capabilities
 * (placement.ts); a size that will be enforced must fit in what the node
 * can still promise, or the answer is RESOURCE_EXHAUSTED.
 */
import type { CreateVolumeRequest, CreateVolumeResponse } from "../gen/csi";
import { requireSupported, toCapabilities, unsupportedReason, type Capability } from "../csi/capabilities";
import { alreadyExists, invalidArgument, outOfRange, resourceExhausted } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import type { Driver } from "../server/driver";
import type { ContentSource, VolumeRecord } from "../storage/volume-record";
import { checkRange, chooseSize, fits, type Range } from "./capacity";
import { applyMutableParameters, checkMutableParameters, sameMutableParameters, unfitProblem } from "./mutable-parameters";
import { contentSourceKeys, describeSource, placeFromSource, planContentSource, requestedSource, sameSource, sizeWithSource } from "./content-source";
import { checkParameters, defining } from "./parameters";
import { holdSpace, isEnforced, place, sizeFor } from "./placement";
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
    requireSupported(caps, store.anyLayoutProfile);
    const parameters = checkParameters(req.parameters);
    const mutableParameters = checkMutableParameters(req.mutableParameters);
    checkMap(req.secrets, "secrets");
    const range = checkRange(req.capacityRange);
    const where = topologyProblem(req.accessibilityRequirements, driver);
    if (where) throw resourceExhausted(where);

    // A retry finds its volume before anything else is decided: the node
    // may have filled up since, or the source been deleted, which must not
    // fail a volume already made.
    const existing = await store.get(store.idForName(name));
    if (existing) {
      checkCompatible(existing, { name, caps, range, parameters, mutableParameters, source: requestedSource(req.volumeContentSource) }, driver);
      // The volume converges to its record even if a crash came between
      // the commit and this step.
      applyMutableParameters(driver, existing, existing.mutableParameters);
      return { volume: toCsiVolume(existing) };
    }
    const source = await planContentSource(req.volumeContentSource, driver);

    const placement = source ? placeFromSource(source, parameters, caps, driver) : place(parameters, caps, driver);
    requireSupported(caps, store.profileFor(placement.layout, placement.fsType));
    const unfit = unfitProblem(placement.layout, mutableParameters);
    if (unfit) throw invalidArgument(unfit);
    const wanted = source
      ? sizeWithSource(range, driver.config.defaultCapacityBytes, source.minBytes)
      : chooseSize(range, driver.config.defaultCapacityBytes);
    const size = sizeFor(placement, wanted, range);
    const fsTotal = (await store.usage()).totalBytes;
    if (size > fsTotal) {
      throw outOfRange(`a volume of ${size} bytes cannot fit on this node's file system (${fsTotal} bytes in all)`);
    }
    const release = isEnforced(placement) ? await holdSpace(driver, size, `a volume of ${size} bytes`) : () => {};
    let record: VolumeRecord;
    try {
      ({ record } = await store.create(
        {
          name,
          capacityBytes: size,
          capabilities: caps,
          parameters,
          mutableParameters,
          topology: nodeTopology(driver).segments ?? {},
          ...placement,
          ...(source ? { contentSource: source.contentSource } : {}),
        },
        source?.fill,
      ));
    } finally {
      release();
    }
    // (A crash between the commit and this step is repaired by the retry,
    // which finds the volume above.)
    applyMutableParameters(driver, record, record.mutableParameters);
    return { volume: toCsiVolume(record) };
  },
});

interface Request {
  name: string;
  caps: readonly Capability[];
  range: Range;
  parameters: Record<string, string>;
  mutableParameters: Record<string, string>;
  source: ContentSource | undefined;
}

/** An existing volume of the same name must be one the request could have made. */
function checkCompatible(record: VolumeRecord, req: Request, driver: Driver): void {
  const name = JSON.stringify(req.name);
  const why = req.caps.map((c) => unsupportedReason(c, driver.hostpath.profileOf(record))).find((r) => r !== undefined);
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
  if (!sameMutableParameters(record.mutableParameters, req.mutableParameters)) {
    throw alreadyExists(`volume ${name} already exists with different mutable_parameters`);
  }
  if (!sameSource(record.contentSource, req.source)) {
    throw alreadyExists(`volume ${name} already exists with ${describeSource(record.contentSource)}, not ${describeSource(req.source)}`);
  }
}
