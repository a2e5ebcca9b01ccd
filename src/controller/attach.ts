/**
 * Attach bookkeeping shared by the controller RPCs.
 *
 * Attach is optional (--enable-attach). The RPC table is fixed when the
 * server starts, so the attach RPCs check the switch themselves and answer
 * exactly as an RPC that is not offered at all would. When it is on,
 * ListVolumes and ControllerGetVolume report each volume's
 * published_node_ids from the attachment records.
 */
import { unimplemented } from "../csi/errors";
import type { Driver } from "../server/driver";

export function requireAttachEnabled(driver: Driver, method: string): void {
  if (!driver.config.enableAttach) {
    throw unimplemented(`${method} is not offered by this driver (it does not advertise PUBLISH_UNPUBLISH_VOLUME; start it with --enable-attach)`);
  }
}

/** The nodes a volume is attached to (O(1)); empty when attach is off. */
export function publishedNodeIds(driver: Driver, volumeId: string): string[] {
  if (!driver.config.enableAttach) return [];
  return driver.attachments.of(volumeId).map((a) => a.nodeId);
}
