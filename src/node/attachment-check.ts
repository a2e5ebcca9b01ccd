/**
 * The node's half of attach: is this volume attached here, and how?
 *
 * With attach on, the CO promises to call NodeStageVolume and
 * NodePublishVolume only after ControllerPublishVolume succeeded for this
 * node, and passes its publish_context along. We check both what the
 * context says (attached to this node, read-only or not) and, when this
 * node runs with --enable-attach, the attachment record on disk — read
 * from the file, not from memory, because the controller may be another
 * process sharing the root. A read-only attachment makes every mount of
 * the volume on this node read-only, whatever a later call asks for.
 */
import { failedPrecondition } from "../csi/errors";
import { PUBLISH_CONTEXT } from "../csi/publish-context";
import type { Driver } from "../server/driver";

export function checkAttachment(driver: Driver, volumeId: string, publishContext: Record<string, string>): { readonly: boolean } {
  const node = driver.config.nodeId;
  const contextNode = publishContext[PUBLISH_CONTEXT.node];
  if (contextNode !== undefined && contextNode !== node) {
    throw failedPrecondition(`publish_context says volume ${volumeId} is attached to node ${contextNode}, but this is node ${node}`);
  }
  let readonly = publishContext[PUBLISH_CONTEXT.readonly] === "true";
  if (driver.config.enableAttach) {
    const here = driver.attachments.readFromDisk(volumeId).find((a) => a.nodeId === node);
    if (!here) throw failedPrecondition(`volume ${volumeId} is not attached to node ${node}; ControllerPublishVolume must succeed first`);
    readonly ||= here.readonly;
  }
  return { readonly };
}
