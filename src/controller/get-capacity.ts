/**
 * GetCapacity: how much could still be provisioned here?
 *
 * Kubernetes uses the answer (through CSIStorageCapacity objects) to avoid
 * scheduling a pod onto a node whose disk cannot hold its volume. The
 * answer is what the StorageClass's backend can still promise for these
 * parameters, capabilities and topology — for hostPath, this node's free
 * space less what volumes with an enforced size may still fill (the same
 * figure CreateVolume checks a new size against); for a share, its free
 * space, whatever the topology. What it cannot serve gets 0: there is no
 * capacity for it here.
 */
import type { GetCapacityRequest, GetCapacityResponse } from "../gen/csi";
import { toCapabilities } from "../csi/capabilities";
import { defineRpc } from "../server/rpc";
import { checkParameters } from "./parameters";

export const getCapacity = defineRpc<GetCapacityRequest, GetCapacityResponse>({
  async handle(req, { driver }) {
    const parameters = checkParameters(driver, req.parameters);
    const caps = (req.volumeCapabilities?.length ?? 0) > 0 ? toCapabilities(req.volumeCapabilities, "volume_capabilities") : [];
    const available = await driver.backends.forParameters(parameters).capacity(driver, parameters, caps, req.accessibleTopology);
    return { availableCapacity: available, maximumVolumeSize: available };
  },
});
