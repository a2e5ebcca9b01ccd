/**
 * GetPluginCapabilities: which optional parts of CSI this plugin offers.
 *
 * CONTROLLER_SERVICE tells the CO to call CreateVolume and friends.
 * VOLUME_ACCESSIBILITY_CONSTRAINTS says volumes are not reachable from
 * every node — a hostPath volume exists on one node's disk — so the CO
 * must honour the topology that CreateVolume returns when placing pods.
 * GROUP_CONTROLLER_SERVICE offers group snapshots, served with the
 * Controller.
 * VolumeExpansion ONLINE: volumes can be grown while pods use them (a
 * quota is raised, an image and its file system grown in place).
 */
import {
  PluginCapability_Service_Type as ServiceType,
  PluginCapability_VolumeExpansion_Type as ExpansionType,
  type GetPluginCapabilitiesRequest,
  type GetPluginCapabilitiesResponse,
} from "../gen/csi";
import { defineRpc } from "../server/rpc";

export const getPluginCapabilities = defineRpc<GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse>({
  async handle(_req, { driver }) {
    const services = [ServiceType.VOLUME_ACCESSIBILITY_CONSTRAINTS];
    if (driver.config.mode !== "node") services.unshift(ServiceType.CONTROLLER_SERVICE, ServiceType.GROUP_CONTROLLER_SERVICE);
    return {
      capabilities: [
        ...services.map((type) => ({ service: { type } })),
        { volumeExpansion: { type: ExpansionType.ONLINE } },
      ],
    };
  },
});
