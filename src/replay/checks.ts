/**
 * The checks of a replay: what a user of the volume would notice, looked
 * at from the node, as a pod would see it.
 *
 *   data      the volume is mounted where the pod looks (the node plugin's
 *             mount reached the host: mount propagation), the files earlier
 *             pods wrote are there, with their content, and this pod can
 *             write its own (for a raw block volume: the bytes at their
 *             offsets on the device)
 *   size      statfs inside the mount shows the size the claim asked for
 *             (nine tenths of it: a file system keeps some for itself)
 *   volume    the driver still has the volume (reclaim Retain), or not (Delete)
 *   group     a pod's fsGroup owns the volume's root and may write there
 *   mode      a VolumeAttributesClass's `mode` is the root's mode
 *   no-mounts nothing is left mounted under the kubelet directory
 *
 * Each returns a sentence saying what it saw; a failed check throws one.
 */
import { closeSync, fsyncSync, openSync, readFileSync, readSync, statfsSync, statSync, writeFileSync, writeSync } from "node:fs";
import * as path from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import { codeName } from "../csi/errors";
import { readMountInfo } from "../mount/mountinfo";
import type { ReplayTarget } from "./run";
import type { Check, FileEntry } from "./steps";

export async function runCheck(check: Check, target: ReplayTarget): Promise<string> {
  switch (check.type) {
    case "data":
      if (!readMountInfo().some((m) => m.mountPoint === check.path)) throw new Error(`nothing is mounted at ${check.path} where the pod looks`);
      return check.block ? blockData(check.path, check.expect, check.write) : fileData(check.path, check.expect, check.write);
    case "size": {
      const s = statfsSync(check.path);
      const total = s.blocks * s.bsize;
      const least = Math.floor(Number(check.askedBytes) * 0.9);
      if (!(total >= least)) throw new Error(`statfs in ${check.path} shows ${total} bytes, less than ${least} (nine tenths of ${check.askedBytes})`);
      return `statfs shows ${total} bytes`;
    }
    case "volume":
      return volumeState(check.volumeId, check.exists, target);
    case "group": {
      const st = statSync(check.path);
      if (st.gid !== check.gid || (st.mode & 0o020) === 0) throw new Error(`${check.path} is group ${st.gid}, mode ${(st.mode & 0o7777).toString(8)}: group ${check.gid} cannot write`);
      return `group ${st.gid}, mode ${(st.mode & 0o7777).toString(8)}`;
    }
    case "mode": {
      const mode = statSync(check.path).mode & 0o7777;
      if (mode !== check.mode) throw new Error(`${check.path} has mode ${mode.toString(8)}, not ${check.mode.toString(8)}`);
      return `mode ${mode.toString(8)}`;
    }
    case "no-mounts": {
      const own = new Set(target.ownMounts ?? []);
      const left = readMountInfo()
        .map((m) => m.mountPoint)
        .filter((m) => m.startsWith(check.under + "/") && !own.has(m));
      if (left.length > 0) throw new Error(`still mounted: ${left.join(", ")}`);
      return "no mounts left";
    }
  }
}

function fileData(dir: string, expect: FileEntry[], write: FileEntry | undefined): string {
  for (const f of expect) {
    let content: string;
    try {
      content = readFileSync(path.join(dir, f.name), "utf8");
    } catch (err) {
      throw new Error(`${f.name} is missing in ${dir}: ${(err as Error).message}`);
    }
    if (content !== f.content) throw new Error(`${f.name} in ${dir} holds ${JSON.stringify(content)}, not ${JSON.stringify(f.content)}`);
  }
  if (write) {
    const file = path.join(dir, write.name);
    writeFileSync(file, write.content);
    const fd = openSync(file, "r");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
  return `found ${expect.length} file(s)${write ? `, wrote ${write.name}` : ""}`;
}

function blockData(device: string, expect: FileEntry[], write: FileEntry | undefined): string {
  const fd = openSync(device, "r+");
  try {
    for (const f of expect) {
      const want = Buffer.from(f.content);
      const got = Buffer.alloc(want.length);
      readSync(fd, got, 0, got.length, f.offset);
      if (!got.equals(want)) throw new Error(`${device} at offset ${f.offset} holds ${JSON.stringify(got.toString())}, not ${JSON.stringify(f.content)}`);
    }
    if (write) {
      writeSync(fd, Buffer.from(write.content), 0, Buffer.byteLength(write.content), write.offset);
      fsyncSync(fd);
    }
  } finally {
    closeSync(fd);
  }
  return `found ${expect.length} record(s) on the device${write ? `, wrote one at offset ${write.offset}` : ""}`;
}

async function volumeState(volumeId: string, exists: boolean, target: ReplayTarget): Promise<string> {
  let found: boolean;
  try {
    await target.client("node").controller.controllerGetVolume({ volumeId });
    found = true;
  } catch (err) {
    const code = codeName((err as ServiceError).code);
    if (code !== "NOT_FOUND") throw new Error(`ControllerGetVolume ${volumeId} on the node plugin: ${code} ${(err as ServiceError).details}`);
    found = false;
  }
  if (found !== exists) throw new Error(`the node plugin ${found ? "still has" : "no longer has"} volume ${volumeId} (ControllerGetVolume)`);
  const onDisk = target.onDisk?.(volumeId);
  if (onDisk !== undefined && onDisk !== exists) throw new Error(`volume ${volumeId}'s data is ${onDisk ? "still" : "no longer"} on the node's disk`);
  return `ControllerGetVolume ${found ? "finds" : "does not find"} it${onDisk === undefined ? "" : `; its data is ${onDisk ? "on" : "gone from"} the node's disk`}`;
}
