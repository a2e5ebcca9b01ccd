// The Controller service: volume lifecycle as cluster-wide objects.
import type { ControllerServer } from "../gen/csi";
import type { RpcTable } from "../server/rpc";
import { controllerExpandVolume } from "./controller-expand-volume";
import { controllerGetCapabilities } from "./controller-get-capabilities";
import { controllerGetVolume } from "./controller-get-volume";
import { createVolume } from "./create-volume";
import { deleteVolume } from "./delete-volume";
import { getCapacity } from "./get-capacity";
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
  createSnapshot: notOffered("CreateSnapshot", "CREATE_DELETE_SNAPSHOT"),
  deleteSnapshot: notOffered("DeleteSnapshot", "CREATE_DELETE_SNAPSHOT"),
  listSnapshots: notOffered("ListSnapshots", "LIST_SNAPSHOTS"),
  getSnapshot: notOffered("GetSnapshot", "GET_SNAPSHOT"),
  controllerExpandVolume,
  controllerModifyVolume: notOffered("ControllerModifyVolume", "MODIFY_VOLUME"),
};
