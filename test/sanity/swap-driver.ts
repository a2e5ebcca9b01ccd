/**
 * A driver for the swap tests: started with swap-hook.ts preloaded, armed
 * by the file `swapFile` (empty until a test writes a script into it).
 */
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { execFileSync } from "node:child_process";
import { mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { swapEnv } from "./swap-hook";

export async function startSwapDriver(extraArgs: string[] = []): Promise<{ d: DriverProcess; swapFile: string }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-test-"));
  const swapFile = path.join(dir, "swap");
  return { d: await startDriver({ dir, extraArgs, env: swapEnv(swapFile) }), swapFile };
}

const MiB = 1024 * 1024;

/**
 * A 16 MiB volume of the kind `cap` asks for (an image or block volume on a
 * driver started in image mode), and someone else's 16 MiB file beside the
 * driver's root, to be swapped in at the volume's name: it begins with
 * `content`, or holds an ext4 file system of its own (`ext4`).
 */
export async function imageVolumeAndStranger(
  d: DriverProcess,
  cap: ReturnType<typeof mountCapability> = mountCapability(),
  theirs: { content?: string; ext4?: boolean } = {},
): Promise<{ volumeId: string; image: string; theirs: string }> {
  const req = { name: uniqueName("img"), volumeCapabilities: [cap], capacityRange: { requiredBytes: 16 * MiB } };
  const volumeId = (await d.client.controller.createVolume(req)).volume!.volumeId!;
  const file = d.scratch(uniqueName("theirs"));
  await fsp.writeFile(file, theirs.content ?? "");
  await fsp.truncate(file, 16 * MiB);
  if (theirs.ext4) execFileSync("mkfs.ext4", ["-q", "-F", file], { stdio: "ignore" });
  return { volumeId, image: path.join(d.root, "data", volumeId), theirs: file };
}

/** Put `theirs` at the volume's name `image`, the volume's own file moved beside it (image.moved). */
export async function swapIn(image: string, theirs: string): Promise<void> {
  await fsp.rename(image, image + ".moved");
  await fsp.rename(theirs, image);
}

/** Undo swapIn: theirs back at `theirs`, the volume's own at its name. */
export async function swapBack(image: string, theirs: string): Promise<void> {
  await fsp.rename(image, theirs);
  await fsp.rename(image + ".moved", image);
}
