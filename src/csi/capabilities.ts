/**
 * Volume capabilities: how a workload wants to use a volume.
 *
 * A VolumeCapability says two things. The access type: a mounted file
 * system (a directory in the container) or a raw block device. The access
 * mode: how many nodes may use the volume and whether they write. A driver
 * must refuse what it cannot really deliver — a node-local directory cannot
 * be ReadWriteMany — because the CO trusts the answer and would otherwise
 * schedule a second writer on another node that never sees the data.
 *
 * Each backend describes what it can do as a CapabilityProfile; the checks
 * below are the one place that compares a request against it.
 */
import {
  VolumeCapability,
  VolumeCapability_AccessMode_Mode as Mode,
} from "../gen/csi";
import { mountWords, parseBindFlags, splitMountFlags } from "../mount/options";
import { invalidArgument } from "./errors";

export { Mode as AccessMode };
export type AccessType = "mount" | "block";

/** A capability in plain terms, checked for shape. */
export interface Capability {
  accessType: AccessType;
  accessMode: Mode;
  fsType: string;
  mountFlags: string[];
  volumeMountGroup: string;
}

/** What one backend can deliver. */
export interface CapabilityProfile {
  accessTypes: ReadonlySet<AccessType>;
  accessModes: ReadonlySet<Mode>;
  /** Accepted MountVolume.fs_type values; "" is always accepted. */
  fsTypes: ReadonlySet<string>;
  /** Whether volume_mount_group (a pod's fsGroup) can be applied. */
  mountGroup: boolean;
  /**
   * Which mount_flags it takes: "bind" (default), the generic per-mount
   * words a bind mount can apply; "filesystem", also any file system
   * option, for volumes mounted with mount(8) (an NFS export).
   */
  mountOptions?: "bind" | "filesystem";
}

/** What a node-local volume can offer: one node, any number of readers or writers there. */
export const SINGLE_NODE_MODES: ReadonlySet<Mode> = new Set([
  Mode.SINGLE_NODE_WRITER,
  Mode.SINGLE_NODE_READER_ONLY,
  Mode.SINGLE_NODE_SINGLE_WRITER,
  Mode.SINGLE_NODE_MULTI_WRITER,
]);

export const MULTI_NODE_MODES: ReadonlySet<Mode> = new Set([
  Mode.MULTI_NODE_READER_ONLY,
  Mode.MULTI_NODE_SINGLE_WRITER,
  Mode.MULTI_NODE_MULTI_WRITER,
]);

export const READ_ONLY_MODES: ReadonlySet<Mode> = new Set([Mode.SINGLE_NODE_READER_ONLY, Mode.MULTI_NODE_READER_ONLY]);

export function modeName(mode: Mode): string {
  return Mode[mode] ?? `access mode ${mode}`;
}

/**
 * Check a capability's shape: exactly one access type, a known access mode.
 * Shape errors are always INVALID_ARGUMENT.
 */
export function toCapability(cap: VolumeCapability | undefined, field: string): Capability {
  if (!cap) throw invalidArgument(`${field} is required`);
  if (cap.block && cap.mount) throw invalidArgument(`${field} sets both block and mount; choose one access type`);
  if (!cap.block && !cap.mount) throw invalidArgument(`${field} has no access type; set block or mount`);
  const mode = cap.accessMode?.mode ?? Mode.UNKNOWN;
  if (mode === Mode.UNKNOWN || Mode[mode] === undefined || mode === Mode.UNRECOGNIZED) {
    throw invalidArgument(`${field}.access_mode is missing or unknown (${mode})`);
  }
  const group = cap.mount?.volumeMountGroup ?? "";
  if (group !== "" && (!/^\d{1,10}$/.test(group) || Number(group) > 0xfffffffe)) {
    throw invalidArgument(`${field}.mount.volume_mount_group must be a numeric group id from 0 to 4294967294 (4294967295 means "no group" to the kernel), got ${JSON.stringify(group)}`);
  }
  return {
    accessType: cap.block ? "block" : "mount",
    accessMode: mode,
    fsType: cap.mount?.fsType ?? "",
    mountFlags: cap.mount?.mountFlags ?? [],
    volumeMountGroup: group,
  };
}

export function toCapabilities(caps: readonly VolumeCapability[] | undefined, field: string): Capability[] {
  if (!caps || caps.length === 0) throw invalidArgument(`${field} is required (at least one capability)`);
  return caps.map((c, i) => toCapability(c, `${field}[${i}]`));
}

/** Why `profile` cannot deliver `cap`, or undefined when it can. */
export function unsupportedReason(cap: Capability, profile: CapabilityProfile): string | undefined {
  if (!profile.accessTypes.has(cap.accessType)) {
    return `access type ${cap.accessType} is not supported by this volume type (supported: ${[...profile.accessTypes].join(", ")})`;
  }
  if (!profile.accessModes.has(cap.accessMode)) {
    return `access mode ${modeName(cap.accessMode)} is not supported by this volume type (supported: ${[...profile.accessModes].map(modeName).join(", ")})`;
  }
  if (cap.accessType === "mount") {
    if (cap.fsType !== "" && !profile.fsTypes.has(cap.fsType)) {
      return `fs_type ${JSON.stringify(cap.fsType)} is not supported (supported: "" or ${[...profile.fsTypes].join(", ")})`;
    }
    const flags = profile.mountOptions === "filesystem" ? splitMountFlags(cap.mountFlags) : parseBindFlags(cap.mountFlags);
    if (typeof flags === "string") return flags;
    if (cap.volumeMountGroup !== "" && !profile.mountGroup) return "volume_mount_group is not supported by this volume type";
  }
  return undefined;
}

/** Throw INVALID_ARGUMENT for the first capability the profile cannot deliver. */
export function requireSupported(caps: readonly Capability[], profile: CapabilityProfile): void {
  for (const cap of caps) {
    const why = unsupportedReason(cap, profile);
    if (why) throw invalidArgument(why);
  }
}

/** Same access type, mode, fs type, flags and group: the test for "compatible" re-publish. */
export function sameCapability(a: Capability, b: Capability): boolean {
  const flagsEqual = mountWords(a.mountFlags).join(",") === mountWords(b.mountFlags).join(",");
  return (
    a.accessType === b.accessType &&
    a.accessMode === b.accessMode &&
    a.fsType === b.fsType &&
    a.volumeMountGroup === b.volumeMountGroup &&
    flagsEqual
  );
}
