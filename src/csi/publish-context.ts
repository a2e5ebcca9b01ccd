/**
 * What ControllerPublishVolume tells the node, and what "a node" is.
 *
 * ControllerPublishVolume answers with a `publish_context`: a small map the
 * CO hands, unread, to the later NodeStageVolume and NodePublishVolume on
 * that node. A cloud disk driver puts the device path there; ours carries
 * the node the volume was attached to and whether the attachment is
 * read-only, so the node side can refuse a volume attached elsewhere and
 * mount a read-only attachment read-only.
 *
 * Which nodes exist: a hostPath volume is a directory on one node's disk,
 * and this driver's controller serves the node whose disk holds --root —
 * the node named by --node-id, which NodeGetInfo reports. That is the only
 * node a volume can be attached to; any other node ID is NOT_FOUND.
 */
import type { Driver } from "../server/driver";

export const PUBLISH_CONTEXT = {
  /** The node the volume is attached to. */
  node: "csi-lab/attached-node",
  /** "true" when the attachment is read-only (PUBLISH_READONLY). */
  readonly: "csi-lab/attached-readonly",
} as const;

export function publishContextFor(nodeId: string, readonly: boolean): Record<string, string> {
  return { [PUBLISH_CONTEXT.node]: nodeId, [PUBLISH_CONTEXT.readonly]: String(readonly) };
}

/** Does `nodeId` name a node this controller can attach volumes to? */
export function nodeExists(driver: Driver, nodeId: string): boolean {
  return nodeId === driver.config.nodeId;
}
