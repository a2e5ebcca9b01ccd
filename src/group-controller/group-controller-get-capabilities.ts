/**
 * GroupControllerGetCapabilities: which GroupController RPCs are offered.
 *
 * The GroupController service is CSI's home for operations on several
 * volumes at once; today that is the volume group snapshot, which the
 * external-snapshotter drives from a VolumeGroupSnapshot object.
 */
import {
  GroupControllerServiceCapability_RPC_Type as Cap,
  type GroupControllerGetCapabilitiesRequest,
  type GroupControllerGetCapabilitiesResponse,
} from "../gen/csi";
import { defineRpc } from "../server/rpc";

export const GROUP_CONTROLLER_CAPABILITIES: readonly Cap[] = [Cap.CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT];

export const groupControllerGetCapabilities = defineRpc<GroupControllerGetCapabilitiesRequest, GroupControllerGetCapabilitiesResponse>({
  async handle() {
    return { capabilities: GROUP_CONTROLLER_CAPABILITIES.map((type) => ({ rpc: { type } })) };
  },
});
