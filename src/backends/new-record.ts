/**
 * What a new volume's record keeps of the CreateVolume that made it, the
 * same for every node-local backend: the name, the size chosen, the
 * capabilities, parameters and mutable parameters asked for, this node's
 * topology, and the content source. A retry is compared with it
 * (controller/create-volume.ts), so every backend must keep it alike.
 */
import type { Driver } from "../server/driver";
import type { VolumeRecord } from "../storage/volume-record";
import { nodeTopology } from "../controller/volume-view";
import type { NewVolumeRequest } from "./backend";

export function requestedFields(driver: Driver, req: NewVolumeRequest, capacityBytes: number) {
  return {
    name: req.name,
    capacityBytes,
    capabilities: [...req.caps],
    parameters: req.parameters,
    mutableParameters: req.mutableParameters,
    topology: nodeTopology(driver).segments ?? {},
    ...(req.source ? { contentSource: req.source.contentSource } : {}),
  } satisfies Partial<VolumeRecord>;
}
