/**
 * ControllerGetCapabilities: which Controller RPCs are really implemented.
 *
 * Sidecars read this list to decide what to call: csi-provisioner needs
 * CREATE_DELETE_VOLUME, csi-resizer EXPAND_VOLUME, and so on. Claiming a
 * capability that is not backed by a working RPC breaks clusters, so the
 * list is exactly what this driver does.
 */
import {
  ControllerServiceCapability_RPC_Type as Cap,
  type ControllerGetCapabilitiesRequest,
  type ControllerGetCapabilitiesResponse,
} from "../gen/csi";
import { defineRpc } from "../server/rpc";

export const CONTROLLER_CAPABILITIES: readonly Cap[] = [
  Cap.CREATE_DELETE_VOLUME,
  Cap.LIST_VOLUMES,
  Cap.GET_CAPACITY,
  Cap.GET_VOLUME,
  Cap.VOLUME_CONDITION,
  Cap.SINGLE_NODE_MULTI_WRITER,
  Cap.EXPAND_VOLUME,
];

export const controllerGetCapabilities = defineRpc<ControllerGetCapabilitiesRequest, ControllerGetCapabilitiesResponse>({
  async handle() {
    return { capabilities: CONTROLLER_CAPABILITIES.map((type) => ({ rpc: { type } })) };
  },
});
