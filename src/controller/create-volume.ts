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
 * The StorageClass parameter `backend` picks where the volume lives. On
 * hostpath, how it is kept — a directory with or without a quota, an
 * image file, a block device — follows its parameters and capabilities
 * (placement.ts); a size that will be enforced must fit in what the node
 * can still promise, or the answer is RESOURCE_EXHAUSTED. On nfs it is a
 * subdirectory of the share (createShared below, storage/shared/): any
 * node, any number of writers, its size a label.
 */
import type { CreateVolumeRequest, CreateVolumeResponse } from "../gen/csi";
import { requireSupported, toCapabilities, unsupportedReason, type Capability } from "../csi/capabilities";
import { alreadyExists, invalidArgument, outOfRange, resourceExhausted } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc, type CallContext } from "../server/rpc";
import type { Driver } from "../server/driver";
import type { ContentSource, VolumeRecord } from "../storage/volume-record";
import { checkRange, chooseSize, fits, type Range } from "./capacity";
import { applyMutableParameters, checkMutableParameters, sameMutableParameters, unfitProblem } from "./mutable-parameters";
import { contentSourceKeys, describeSource, placeFromSource, planContentSource, requestedSource, sameSource, sizeWithSource } from "./content-source";
import { backendOf, checkParameters, defining } from "./parameters";
import { planShared } from "./shared-parameters";
import { profileOf, sharedProfile } from "../storage/volumes";
import type { VolumeContentSource } from "../gen/csi";
import { holdSpace, isEnforced, place, sizeFor } from "./placement";
import { topologyProblem } from "./topology";
import { nodeTopology, toCsiVolume, volumeKey } from "./volume-view";

export const createVolume = defineRpc<CreateVolumeRequest, CreateVolumeResponse>({
  lockKeys: (req, driver) => [
    ...(req.name ? volumeKey(driver.hostpath.idForName(req.name)) : []),
    ...contentSourceKeys(req.volumeContentSource),
  ],

  async handle(req, ctx) {
    const { driver } = ctx;
    const store = driver.hostpath;
    const name = checkToken(req.name, "name");
    const caps = toCapabilities(req.volumeCapabilities, "volume_capabilities");
    const parameters = checkParameters(req.parameters);
    const mutableParameters = checkMutableParameters(req.mutableParameters);
    checkMap(req.secrets, "secrets");
    const range = checkRange(req.capacityRange);
    if (backendOf(parameters) === "nfs") {
      return createShared(driver, { name, caps, range, parameters, mutableParameters, source: requestedSource(req.volumeContentSource) }, req.volumeContentSource, ctx);
    }
    requireSupported(caps, store.anyLayoutProfile);
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
    const source = await planContentSource(req.volumeContentSource, driver, ctx);

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
  const why = req.caps.map((c) => unsupportedReason(c, profileOf(driver, record))).find((r) => r !== undefined);
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

/**
 * CreateVolume on the shared backend: a directory on the share. Its ID is
 * made from where it is (storage/shared/volume-id.ts), so a retry of the
 * same request finds the same volume. Topology requirements do not
 * constrain it (every node reaches the share); its size is recorded, not
 * enforced. A restore or clone copies into the new directory before it is
 * committed; only a directory tree can be copied into one. The share must
 * be one the administrator allowed (--allow-share), and a directory already
 * at subDir holding data the driver did not make is never adopted.
 */
async function createShared(
  driver: Driver,
  req: Request,
  src: VolumeContentSource | undefined,
  call: Pick<CallContext, "signal" | "log">,
): Promise<CreateVolumeResponse> {
  const plan = planShared(req.parameters, req.name);
  const refused = driver.shared.notAllowed(plan.location);
  if (refused) throw invalidArgument(`parameter share: ${refused}`);
  requireSupported(req.caps, sharedProfile(plan.location));
  const unfit = unfitProblem("dir", req.mutableParameters);
  if (unfit) throw invalidArgument(unfit);
  const { id } = driver.shared.idFor(plan.location, plan.onDelete);
  const existing = await driver.shared.getById(id);
  if (existing) {
    checkCompatible(existing, req, driver);
    return { volume: toCsiVolume(existing) };
  }
  if (await driver.hostpath.get(driver.hostpath.idForName(req.name))) {
    throw alreadyExists(`volume ${JSON.stringify(req.name)} already exists on backend hostpath`);
  }
  const source = await planContentSource(src, driver, call);
  if (source && source.layout !== "dir") {
    throw invalidArgument(`the content source ${describeSource(source.contentSource)} is a ${source.layout} volume; only a directory tree can be copied into a shared volume`);
  }
  const capacityBytes = source
    ? sizeWithSource(req.range, driver.config.defaultCapacityBytes, source.minBytes)
    : chooseSize(req.range, driver.config.defaultCapacityBytes);
  const mode = req.mutableParameters.mode !== undefined ? parseInt(req.mutableParameters.mode, 8) : plan.mode;
  const record = await driver.shared.create(
    {
      name: req.name,
      location: plan.location,
      onDelete: plan.onDelete,
      mode,
      ...(plan.uid !== undefined ? { uid: plan.uid } : {}),
      ...(plan.gid !== undefined ? { gid: plan.gid } : {}),
      capacityBytes,
      record: {
        capabilities: [...req.caps],
        parameters: req.parameters,
        mutableParameters: req.mutableParameters,
        ...(source ? { contentSource: source.contentSource } : {}),
      },
    },
    source?.fill,
  );
  return { volume: toCsiVolume(record) };
}
