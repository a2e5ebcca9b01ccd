/**
 * A driver for the swap tests: started with swap-hook.ts preloaded, armed
 * by the file `swapFile` (empty until a test writes a script into it).
 */
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { startDriver, type DriverProcess } from "./harness";
import { swapEnv } from "./swap-hook";

export async function startSwapDriver(extraArgs: string[] = []): Promise<{ d: DriverProcess; swapFile: string }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-test-"));
  const swapFile = path.join(dir, "swap");
  return { d: await startDriver({ dir, extraArgs, env: swapEnv(swapFile) }), swapFile };
}
