/**
 * GetCapacity: how much could still be provisioned here?
 *
 * Kubernetes uses the answer (through CSIStorageCapacity objects) to avoid
 * scheduling a pod onto a node whose disk cannot hold its volume. For
 * hostPath volumes that is the free space of the file system under the
 * root. Capabilities or a topology this node cannot serve get 0: there is
 * no capacity for them here.
 */
import type { GetCapacityRequest, GetCapacityResponse } from "../gen/csi";
import { toCapabilities, unsupportedReason } from "../csi/capabilities";
import { defineRpc } from "../server/rpc";
import { checkParameters } from "./parameters";
import { matchesThisNode } from "./topology";

export const getCapacity = defineRpc<GetCapacityRequest, GetCapacityResponse>({
  async handle(req, { driver }) {
    checkParameters(req.parameters);
    const caps = (req.volumeCapabilities?.length ?? 0) > 0 ? toCapabilities(req.volumeCapabilities, "volume_capabilities") : [];
    const unsupported = caps.some((c) => unsupportedReason(c, driver.hostpath.profile) !== undefined);
    const elsewhere = req.accessibleTopology !== undefined && !matchesThisNode(req.accessibleTopology, driver);
    if (unsupported || elsewhere) return { availableCapacity: 0, maximumVolumeSize: 0 };
    const { availableBytes } = await driver.hostpath.usage();
    return { availableCapacity: availableBytes, maximumVolumeSize: availableBytes };
  },
});
