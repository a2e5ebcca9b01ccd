// The GroupController service: operations on several volumes as one.
import type { GroupControllerDefinition } from "../gen/csi";
import type { RpcTable } from "../server/rpc";
import { createVolumeGroupSnapshot } from "./create-volume-group-snapshot";
import { deleteVolumeGroupSnapshot } from "./delete-volume-group-snapshot";
import { getVolumeGroupSnapshot } from "./get-volume-group-snapshot";
import { groupControllerGetCapabilities } from "./group-controller-get-capabilities";

export const groupControllerRpcs: RpcTable<typeof GroupControllerDefinition> = {
  groupControllerGetCapabilities,
  createVolumeGroupSnapshot,
  deleteVolumeGroupSnapshot,
  getVolumeGroupSnapshot,
};
