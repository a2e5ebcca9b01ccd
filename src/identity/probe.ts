/**
 * Probe: is the plugin able to work right now?
 *
 * A liveness probe calls this every few seconds. "Ready" here means the
 * root directory exists and we can create and remove a file in it — the
 * least every volume operation needs — and, for a node plugin, that the
 * process may mount at all (CAP_SYS_ADMIN). A failing probe is reported as
 * ready=false, not as an error: the process is alive, its storage is not.
 */
import { closeSync, constants as fsc, promises as fsp } from "node:fs";
import * as path from "node:path";
import { openFd } from "../storage/fd-calls";
import type { ProbeRequest, ProbeResponse } from "../gen/csi";
import { defineRpc } from "../server/rpc";

let probes = 0;

export async function rootIsWritable(root: string): Promise<string | undefined> {
  // A name per check: the Probe RPC and the HTTP /healthz may run at once.
  const probe = path.join(root, `.probe-${process.pid}-${probes++}`);
  // A liveness probe asks every few seconds, for as long as the driver
  // runs: two trips to the thread pool (create, unlink), where writeFile
  // and rm made five. Closing the empty file waits for nothing.
  try {
    const fd = await openFd(probe, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    closeSync(fd);
    await fsp.unlink(probe);
    return undefined;
  } catch (err) {
    await fsp.rm(probe, { force: true }).catch(() => undefined); // made but not removed: try once more
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
