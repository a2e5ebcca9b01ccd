/**
 * Probe: is the plugin able to work right now?
 *
 * A liveness probe calls this every few seconds. "Ready" here means the
 * root directory exists and we can create and remove a file in it — the
 * least every volume operation needs — and, for a node plugin, that the
 * process may mount at all (CAP_SYS_ADMIN). A failing probe is reported as
 * ready=false, not as an error: the process is alive, its storage is not.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import type { ProbeRequest, ProbeResponse } from "../gen/csi";
import { defineRpc } from "../server/rpc";

let probes = 0;

export async function rootIsWritable(root: string): Promise<string | undefined> {
  // A name per check: the Probe RPC and the HTTP /healthz may run at once.
  const probe = path.join(root, `.probe-${process.pid}-${probes++}`);
  try {
    await fsp.writeFile(probe, "");
    await fsp.rm(probe);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export const probe = defineRpc<ProbeRequest, ProbeResponse>({
  async handle(_req, { driver, log }) {
    const problem = driver.mountProblem ?? (await rootIsWritable(driver.config.root));
    if (problem) log.warn("probe: not ready", { problem });
    return { ready: problem === undefined };
  },
});
