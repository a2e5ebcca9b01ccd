/**
 * GetCapacity: how much could still be provisioned here?
 *
 * Kubernetes uses the answer (through CSIStorageCapacity objects) to avoid
 * scheduling a pod onto a node whose disk cannot hold its volume. The
 * answer is what this node can still promise: the free space of the file
 * system under the root, less the room that volumes with an enforced size
 * may still fill (placement.ts, capacity-ledger.ts) — the same figure
 * CreateVolume checks a new size against. Capabilities, parameters or a
 * topology this node cannot serve get 0: there is no capacity for them
 * here. For the shared backend it is the share's free space (statfs,
 * bounded in time), whatever the topology: every node reaches the share.
 */
import type { GetCapacityRequest, GetCapacityResponse } from "../gen/csi";
import { toCapabilities, unsupportedReason } from "../csi/capabilities";
import { defineRpc } from "../server/rpc";
import { backendOf, checkParameters } from "./parameters";
import { sharedProfile } from "../storage/volumes";
import { place, promisable, type Placement } from "./placement";
import { matchesThisNode } from "./topology";

export const getCapacity = defineRpc<GetCapacityRequest, GetCapacityResponse>({
  async handle(req, { driver }) {
    const parameters = checkParameters(req.parameters);
    const caps = (req.volumeCapabilities?.length ?? 0) > 0 ? toCapabilities(req.volumeCapabilities, "volume_capabilities") : [];
    if (backendOf(parameters) === "nfs") {
      const share = { server: parameters.server ?? "", share: parameters.share! };
      if (caps.some((c) => unsupportedReason(c, sharedProfile(share)) !== undefined)) return { availableCapacity: 0, maximumVolumeSize: 0 };
      const { availableBytes } = await driver.shared.usage(share);
      return { availableCapacity: availableBytes, maximumVolumeSize: availableBytes };
    }
    const elsewhere = req.accessibleTopology !== undefined && !matchesThisNode(req.accessibleTopology, driver);
    let placement: Placement | undefined;
    try {
      placement = place(parameters, caps, driver);
    } catch {
      // e.g. capacity: quota on a root without quotas, or block with capacity: none
    }
    const profile = placement && driver.hostpath.profileFor(placement.layout, placement.fsType);
    const unsupported = !profile || caps.some((c) => unsupportedReason(c, profile) !== undefined);
    if (unsupported || elsewhere) return { availableCapacity: 0, maximumVolumeSize: 0 };
    const available = await promisable(driver);
    return { availableCapacity: available, maximumVolumeSize: available };
  },
});
