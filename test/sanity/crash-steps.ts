/**
 * The pieces the crash explorer's cycles (crash-cycles.ts) are made of: the
 * steps of a volume's life — its RPCs, with the arguments a CO sends, and
 * the checks that a volume keeps what was written to it — and the kinds
 * of volume they are run with.
 *
 * A step's arguments come only from the cycle's fixed names and from what
 * earlier steps answered, so a step run again after a crash sends exactly
 * what it sent the first time, as a CO's retry does.
 */
import assert from "node:assert/strict";
import { closeSync, mkdirSync, openSync, readFileSync, readSync, statfsSync, writeFileSync, writeSync } from "node:fs";
import * as path from "node:path";
import type { VolumeCapability } from "../../src/gen/csi";
import { blockCapability, mountCapability, type DriverProcess } from "./harness";

/** What the steps of one run of a cycle share. */
export interface CycleState {
  d: DriverProcess;
  /** Volume ID and context of each volume the cycle made, by the cycle's name for it. */
  volumes: Map<string, { volumeId: string; volumeContext: Record<string, string> }>;
  snapshots: Map<string, string>;
}

export interface Step {
  /** The RPC ("CreateVolume") and which volume, or the check. */
  name: string;
  /** An RPC the explorer kills the driver in (false: run only as part of the cycle). */
  explore: boolean;
  run(s: CycleState): Promise<void>;
}

export const MiB = 1024 * 1024;
const MARKER = "written before the crash\n";

export function volume(s: CycleState, name: string): { volumeId: string; volumeContext: Record<string, string> } {
  const v = s.volumes.get(name);
  assert.ok(v, `volume ${name} was not made`);
  return v;
}

export const staging = (s: CycleState, name: string) => s.d.path(`${name}-staging`);
export const target = (s: CycleState, name: string) => s.d.path(`${name}-target`);

export interface VolumeKind {
  capability: VolumeCapability;
  parameters(d: DriverProcess): Record<string, string>;
}

export function create(name: string, kind: VolumeKind, explore = true, source?: string, bytes = 16 * MiB): Step {
  return {
    name: source ? `CreateVolume ${name} from ${source}` : `CreateVolume ${name}`,
    explore,
    async run(s) {
      const volumeContentSource = source ? { snapshot: { snapshotId: s.snapshots.get(source)! } } : undefined;
      const res = await s.d.client.controller.createVolume({
        name,
        capacityRange: { requiredBytes: bytes },
        volumeCapabilities: [kind.capability],
        parameters: kind.parameters(s.d),
        volumeContentSource,
      });
      s.volumes.set(name, { volumeId: res.volume!.volumeId!, volumeContext: res.volume!.volumeContext ?? {} });
    },
  };
}

export function nodeSteps(name: string, kind: VolumeKind, explore: boolean): { stage: Step; publish: Step; unpublish: Step; unstage: Step } {
  return {
    stage: {
      name: `NodeStageVolume ${name}`,
      explore,
      run: async (s) => {
        const v = volume(s, name);
        await s.d.client.node.nodeStageVolume({ ...v, stagingTargetPath: staging(s, name), volumeCapability: kind.capability });
      },
    },
    publish: {
      name: `NodePublishVolume ${name}`,
      explore,
      run: async (s) => {
        const v = volume(s, name);
        const req = { ...v, stagingTargetPath: staging(s, name), targetPath: target(s, name), volumeCapability: kind.capability };
        await s.d.client.node.nodePublishVolume(req);
      },
    },
    unpublish: {
      name: `NodeUnpublishVolume ${name}`,
      explore,
      run: async (s) => void (await s.d.client.node.nodeUnpublishVolume({ volumeId: volume(s, name).volumeId, targetPath: target(s, name) })),
    },
    unstage: {
      name: `NodeUnstageVolume ${name}`,
      explore,
      run: async (s) => void (await s.d.client.node.nodeUnstageVolume({ volumeId: volume(s, name).volumeId, stagingTargetPath: staging(s, name) })),
    },
  };
}

/** Write the marker into a published volume: a file in its directory, or the first bytes of its device. */
export function writeMarker(name: string, kind: VolumeKind): Step {
  return {
    name: `write to ${name}`,
    explore: false,
    run: async (s) => {
      if (!kind.capability.block) return writeFileSync(path.join(target(s, name), "marker"), MARKER);
      const fd = openSync(target(s, name), "r+");
      writeSync(fd, Buffer.from(MARKER), 0, MARKER.length, 0);
      closeSync(fd);
    },
  };
}

/** The marker is there: what was written before a crash is not lost. */
export function checkMarker(name: string, kind: VolumeKind): Step {
  return {
    name: `${name} holds what was written`,
    explore: false,
    run: async (s) => {
      if (!kind.capability.block) return assert.equal(readFileSync(path.join(target(s, name), "marker"), "utf8"), MARKER, `${name} lost its file`);
      const fd = openSync(target(s, name), "r");
      const buf = Buffer.alloc(MARKER.length);
      readSync(fd, buf, 0, buf.length, 0);
      closeSync(fd);
      assert.equal(buf.toString(), MARKER, `${name} lost its first bytes`);
    },
  };
}

/** The published volume's file system has grown to about `bytes`. */
export function grown(name: string, kind: VolumeKind, bytes: number): Step {
  return {
    name: `${name} has grown`,
    explore: false,
    run: async (s) => {
      if (kind.capability.block) return; // a device's size: the block tests check what the kernel says of it
      const st = statfsSync(target(s, name));
      assert.ok(st.blocks * st.bsize > (bytes * 3) / 4, `${name}'s file system is ${st.blocks * st.bsize} bytes, asked ${bytes}`);
    },
  };
}

export function deleteVolume(name: string, explore = true): Step {
  return { name: `DeleteVolume ${name}`, explore, run: async (s) => void (await s.d.client.controller.deleteVolume({ volumeId: volume(s, name).volumeId })) };
}

/** ControllerPublishVolume and ControllerUnpublishVolume to this node (the driver started with --enable-attach). */
export function attachSteps(name: string, kind: VolumeKind): { attach: Step; detach: Step } {
  return {
    attach: {
      name: `ControllerPublishVolume ${name}`,
      explore: true,
      run: async (s) => void (await s.d.client.controller.controllerPublishVolume({ volumeId: volume(s, name).volumeId, nodeId: s.d.nodeId, volumeCapability: kind.capability })),
    },
    detach: {
      name: `ControllerUnpublishVolume ${name}`,
      explore: true,
      run: async (s) => void (await s.d.client.controller.controllerUnpublishVolume({ volumeId: volume(s, name).volumeId, nodeId: s.d.nodeId })),
    },
  };
}

/** The kinds of volume the cycles use: a capability, and the StorageClass parameters. */
export const plain = (extra: Record<string, string> = {}) => () => ({ ...extra });
export const IMAGE: VolumeKind = { capability: mountCapability(), parameters: plain({ capacity: "image" }) };
export const IMAGE_XFS: VolumeKind = { capability: { ...mountCapability(), mount: { fsType: "xfs", mountFlags: [], volumeMountGroup: "" } }, parameters: plain({ capacity: "image" }) };
export const QUOTA: VolumeKind = { capability: mountCapability(), parameters: plain({ capacity: "quota" }) };
export const BLOCK: VolumeKind = { capability: blockCapability(), parameters: plain() };
export const NONE: VolumeKind = { capability: mountCapability(), parameters: plain({ capacity: "none" }) };
export const MEMORY: VolumeKind = { capability: mountCapability(), parameters: plain({ backend: "memory" }) };
export const SHARED: VolumeKind = {
  capability: mountCapability(),
  parameters: (d) => {
    mkdirSync(d.share, { recursive: true });
    return { backend: "nfs", share: d.share };
  },
};
