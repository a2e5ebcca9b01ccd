/**
 * Every way a volume can keep its content, for the tests of snapshots,
 * restores and clones of volumes in use.
 *
 * A copy is only as good as the layout it was taken from: a directory is
 * read file by file, an image file holds a whole file system whose latest
 * writes may still be in the page cache of its mount, a block volume's
 * writes may be in the device's cache. So those tests run once per row of
 * COPY_CASES — every layout of every backend, on the roots where it
 * behaves differently (quotas, reflinks). A backend or layout added later
 * gets a row here, and the tests run on it.
 *
 * PodVolume is a volume as a pod sees it: created through the driver,
 * staged and published, written and read at its target path.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import type { VolumeCapability, VolumeContentSource } from "../../src/gen/csi";
import { readMountInfo } from "../../src/mount/mountinfo";
import { HOSTPATH, NFS_LOCAL, type TestBackend } from "./backends";
import { blockCapability, Mode, uniqueName, type DriverProcess } from "./harness";
import type { LoopFsKind } from "./loop-fs";
import { IMAGE_FS_PROGRAMS } from "./programs";

const MiB = 1024 * 1024;

export interface CopyCase {
  name: string;
  backend: TestBackend;
  /** A file system at the target, or a raw device. */
  access: "mount" | "block";
  /** StorageClass parameters besides the backend's own. */
  parameters: Record<string, string>;
  /** The mount capability's fs_type ("" lets the driver choose). */
  fsType?: string;
  sizeBytes: number;
  /** Run the driver with its root on a fresh loop file system of this kind; otherwise on the test's scratch directory. */
  root?: LoopFsKind;
  /** What data/<id> must be, so that a row cannot silently test another layout. */
  layout: "dir" | "image" | "block";
}

export const COPY_CASES: readonly CopyCase[] = [
  { name: "hostpath, directory (capacity: none)", backend: HOSTPATH, access: "mount", parameters: { capacity: "none" }, sizeBytes: 64 * MiB, layout: "dir" },
  { name: "hostpath, quota on btrfs (a qgroup)", backend: HOSTPATH, access: "mount", parameters: { capacity: "quota" }, sizeBytes: 64 * MiB, root: "btrfs-quota", layout: "dir" },
  { name: "hostpath, quota on XFS (a project quota)", backend: HOSTPATH, access: "mount", parameters: { capacity: "quota" }, sizeBytes: 64 * MiB, root: "xfs-prjquota", layout: "dir" },
  { name: "hostpath, the defaults (no parameters: an ext4 image here)", backend: HOSTPATH, access: "mount", parameters: {}, sizeBytes: 320 * MiB, layout: "image" },
  { name: "hostpath, image with XFS", backend: HOSTPATH, access: "mount", parameters: { capacity: "image" }, fsType: "xfs", sizeBytes: 320 * MiB, layout: "image" },
  { name: "hostpath, image on an XFS root (copied as reflinks)", backend: HOSTPATH, access: "mount", parameters: { capacity: "image" }, sizeBytes: 320 * MiB, root: "xfs", layout: "image" },
  { name: "hostpath, block", backend: HOSTPATH, access: "block", parameters: {}, sizeBytes: 64 * MiB, layout: "block" },
  { name: "hostpath, block on an XFS root (copied as reflinks)", backend: HOSTPATH, access: "block", parameters: {}, sizeBytes: 64 * MiB, root: "xfs", layout: "block" },
  { name: "nfs (a local share), directory", backend: NFS_LOCAL, access: "mount", parameters: {}, sizeBytes: 64 * MiB, layout: "dir" },
];

/**
 * Programs a case needs besides its root's (loop-fs.ts checks those): the
 * driver's tools for its image's file system, and fsckImage's check.
 */
export function programsFor(c: CopyCase): string[] {
  return c.fsType === "xfs" ? [...IMAGE_FS_PROGRAMS.xfs, "xfs_repair"] : [];
}

export function capabilityOf(c: CopyCase): VolumeCapability {
  if (c.access === "block") return blockCapability(Mode.SINGLE_NODE_WRITER);
  return { mount: { fsType: c.fsType ?? "", mountFlags: [], volumeMountGroup: "" }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } };
}

/** A volume as a pod uses it: staged and published at `target` (a directory, or a device file). */
export class PodVolume {
  readonly staging: string;
  readonly target: string;

  private constructor(
    readonly d: DriverProcess,
    readonly c: CopyCase,
    readonly volumeId: string,
    readonly volumeContext: Record<string, string>,
  ) {
    this.staging = d.path(uniqueName("stage"));
    this.target = d.path(uniqueName("target"));
  }

  /**
   * Create a volume for case `c` (from `source`, if given), and stage and
   * publish it; `beforeUse` runs in between (e.g. to check its image).
   */
  static async create(d: DriverProcess, c: CopyCase, source?: VolumeContentSource, beforeUse?: (v: PodVolume) => void): Promise<PodVolume> {
    const { volume } = await d.client.controller.createVolume({
      name: uniqueName("copy"),
      volumeCapabilities: [capabilityOf(c)],
      capacityRange: { requiredBytes: c.sizeBytes },
      parameters: c.backend.parameters(d, c.parameters),
      ...(source ? { volumeContentSource: source } : {}),
    });
    const v = new PodVolume(d, c, volume!.volumeId!, volume!.volumeContext ?? {});
    if (c.backend.name === "hostpath") {
      const meta = JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${v.volumeId}.json`), "utf8")) as { layout?: string };
      assert.equal(meta.layout ?? "dir", c.layout, `the case ${c.name} makes ${c.layout} volumes`);
    }
    beforeUse?.(v);
    await v.use();
    return v;
  }

  private async use(): Promise<void> {
    const req = { volumeId: this.volumeId, volumeContext: this.volumeContext, volumeCapability: capabilityOf(this.c) };
    await this.d.client.node.nodeStageVolume({ ...req, stagingTargetPath: this.staging });
    await this.d.client.node.nodePublishVolume({ ...req, stagingTargetPath: this.staging, targetPath: this.target });
  }

  async release(): Promise<void> {
    await this.d.client.node.nodeUnpublishVolume({ volumeId: this.volumeId, targetPath: this.target });
    await this.d.client.node.nodeUnstageVolume({ volumeId: this.volumeId, stagingTargetPath: this.staging });
  }

  async snapshot(name = uniqueName("snap")): Promise<string> {
    return (await this.d.client.controller.createSnapshot({ name, sourceVolumeId: this.volumeId })).snapshot!.snapshotId!;
  }

  /** The files at the target (a file system's own lost+found left out), name → bytes. */
  async files(): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (const name of (await fsp.readdir(this.target)).sort()) {
      if (name === "lost+found") continue;
      out.set(name, await fsp.readFile(path.join(this.target, name)));
    }
    return out;
  }

  /** Every byte of the device at the target. */
  async device(): Promise<Buffer> {
    return fsp.readFile(this.target);
  }

  /** Where a snapshot of this volume keeps its content (hostpath snapshot store). */
  snapshotContent(snapshotId: string): string {
    return path.join(this.d.root, "snapshots", "data", snapshotId);
  }
}

/**
 * Check an image snapshot's file system without mounting it (read-only
 * checks: e2fsck -n, xfs_repair -n). A copy taken while its file system
 * was being written, without a freeze, shows a dirty journal or worse.
 */
export function fsckImage(file: string, fsType: string): void {
  if (fsType === "xfs") execFileSync("xfs_repair", ["-n", "-f", file], { stdio: "pipe" });
  else execFileSync("e2fsck", ["-f", "-n", file], { stdio: "pipe" });
}

/** A writer process (writer.ts): a pod writing; `latest` is the last write it reported complete. */
export class Writer {
  latest = -1;
  private readonly proc: ChildProcess;
  private exited = false;

  constructor(...args: string[]) {
    this.proc = spawn(process.execPath, [path.join(__dirname, "writer.js"), ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let buf = "";
    this.proc.stdout!.on("data", (chunk: Buffer) => {
      buf += chunk.toString();
      const lines = buf.split("\n");
      buf = lines.pop()!;
      if (lines.length > 0) this.latest = Number(lines.at(-1));
    });
    this.proc.on("exit", () => (this.exited = true));
  }

  /** Wait until at least `n` more writes have completed (the file system is not stuck). */
  async advance(n: number, ms = 20_000): Promise<void> {
    const goal = this.latest + n;
    const end = Date.now() + ms;
    while (this.latest < goal) {
      if (this.exited) throw new Error("the writer exited");
      if (Date.now() > end) throw new Error(`the writer stalled at ${this.latest}, waiting for ${goal}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill("SIGKILL");
    await gone;
  }
}

/** Thaw whatever file system under `dir` a failed test might have left frozen (each one ours, on a loop device). */
export function thawUnder(dir: string): void {
  for (const m of readMountInfo()) {
    if (m.mountPoint.startsWith(dir + "/") && m.source.startsWith("/dev/loop")) spawnSync("fsfreeze", ["--unfreeze", m.mountPoint], { stdio: "ignore" });
  }
}
