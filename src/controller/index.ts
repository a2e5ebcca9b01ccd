// The Controller service: volume lifecycle as cluster-wide objects.
import type { ControllerDefinition } from "../gen/csi";
import type { RpcTable } from "../server/rpc";
import { controllerExpandVolume } from "./controller-expand-volume";
import { controllerGetCapabilities } from "./controller-get-capabilities";
import { controllerGetVolume } from "./controller-get-volume";
import { controllerModifyVolume } from "./controller-modify-volume";
import { controllerPublishVolume } from "./controller-publish-volume";
import { controllerUnpublishVolume } from "./controller-unpublish-volume";
import { createSnapshot } from "./create-snapshot";
import { createVolume } from "./create-volume";
import { deleteSnapshot } from "./delete-snapshot";
import { deleteVolume } from "./delete-volume";
import { getCapacity } from "./get-capacity";
import { getSnapshot } from "./get-snapshot";
import { listSnapshots } from "./list-snapshots";
import { listVolumes } from "./list-volumes";
import { validateVolumeCapabilities } from "./validate-volume-capabilities";

export const controllerRpcs: RpcTable<typeof ControllerDefinition> = {
  createVolume,
  deleteVolume,
  validateVolumeCapabilities,
  listVolumes,
  getCapacity,
  controllerGetCapabilities,
  controllerGetVolume,
  controllerPublishVolume,
  controllerUnpublishVolume,
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  getSnapshot,
  controllerExpandVolume,
  controllerModifyVolume,
};
