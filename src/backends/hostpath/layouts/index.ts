/**
 * The node side of each volume layout.
 *
 * Every layout is staged once per node and bound into each pod from
 * there; what "staged" means differs:
 *
 *   dir    the volume's directory, bind-mounted at the staging path
 *   image  the image's file system, loop-mounted at the staging path
 *   block  the image's loop device node, bind-mounted onto the file
 *          <staging path>/block
 *
 * The RPC files (node-stage-volume.ts, …) hold the CSI rules — validation,
 * idempotency, conflicts — and call the layout for the mechanics.
 */
import type { VolumeUsage } from "../../../gen/csi";
import type { MountPlace } from "../../../mount/bind";
import type { MountEntry } from "../../../mount/mountinfo";
import type { Driver } from "../../../server/driver";
import type { VolumeLayout } from "../../../storage/volume-record";
import type { NodeVolume } from "../node-volume";
import { blockLayout } from "./block";
import { dirLayout } from "./dir";
import { imageLayout } from "./image";

export interface NodeLayout {
  /**
   * Where under the staging path NodeStage puts the volume: undefined for
   * the staging path itself, else the name of a file inside it.
   */
  stagedChild: string | undefined;
  /** What the volume is mounted onto, at the staging path and at targets: a directory, or a file for a device. */
  placeKind: "dir" | "file";
  /**
   * Make the volume appear at the staged place (nothing of it is there
   * yet); read-only when its attachment is (PUBLISH_READONLY).
   */
  stage(driver: Driver, vol: NodeVolume, staged: MountPlace, readonly: boolean): Promise<void>;
  /** Put the staged volume (`source`: its staged place) at the target, with per-mount flag bits (MS_RDONLY, …). */
  publish(vol: NodeVolume, source: string, target: MountPlace, bits: number, readonly: boolean): Promise<void>;
  /** The volume's usage, seen where it is mounted (at volumePath: the caller made sure). */
  stats(driver: Driver, vol: NodeVolume, volumePath: string): Promise<VolumeUsage[]>;
  /**
   * Why the volume cannot grow where it is mounted (to `required` bytes, or to its record's size), or
   * undefined: asked before anything grows, so that a refusal (FAILED_PRECONDITION) leaves it as it was.
   */
  cannotExpand?(vol: NodeVolume, at: ExpandAt, required: number): string | undefined;
  /** Make what the node holds of the volume as large as its record says. */
  expand(driver: Driver, vol: NodeVolume, at: ExpandAt): Promise<void>;
}

/** Where NodeExpandVolume finds the volume (../node-expand.ts). */
export interface ExpandAt {
  /** volume_path, resolved. */
  volumePath: string;
  /** The volume's mount there (a block volume's: or its device where it is staged). */
  mount: MountEntry;
  /** A read-write mount of the same file system, proven the volume's; undefined when every mount of it is read-only. */
  writable: MountEntry | undefined;
}

const LAYOUTS: Record<VolumeLayout, NodeLayout> = { dir: dirLayout, image: imageLayout, block: blockLayout };

export function nodeLayout(layout: VolumeLayout): NodeLayout {
  return LAYOUTS[layout];
}
