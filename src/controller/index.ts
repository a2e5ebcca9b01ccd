// The Controller service: volume lifecycle as cluster-wide objects.
import type { ControllerServer } from "../gen/csi";
import type { RpcTable } from "../server/rpc";
import { controllerGetCapabilities } from "./controller-get-capabilities";
import { controllerGetVolume } from "./controller-get-volume";
import { createSnapshot } from "./create-snapshot";
import { createVolume } from "./create-volume";
import { deleteSnapshot } from "./delete-snapshot";
import { deleteVolume } from "./delete-volume";
import { getCapacity } from "./get-capacity";
import { getSnapshot } from "./get-snapshot";
import { listSnapshots } from "./list-snapshots";
import { listVolumes } from "./list-volumes";
import { notOffered } from "../server/not-offered";
import { validateVolumeCapabilities } from "./validate-volume-capabilities";

export const controllerRpcs: RpcTable<ControllerServer> = {
  createVolume,
  deleteVolume,
  validateVolumeCapabilities,
  listVolumes,
  getCapacity,
  controllerGetCapabilities,
  controllerGetVolume,
  controllerPublishVolume: notOffered("ControllerPublishVolume", "PUBLISH_UNPUBLISH_VOLUME"),
  controllerUnpublishVolume: notOffered("ControllerUnpublishVolume", "PUBLISH_UNPUBLISH_VOLUME"),
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  getSnapshot,
  controllerExpandVolume: notOffered("ControllerExpandVolume", "EXPAND_VOLUME"),
  controllerModifyVolume: notOffered("ControllerModifyVolume", "MODIFY_VOLUME"),
};
