/**
 * `csi-lab lab [--host H] [--port P] [--driver HOST:PORT]`: serve the lab's
 * page and say where to open it. Ctrl-C stops it (and a replay under way),
 * and so does the end of the process that started it.
 */
import { parseArgs } from "node:util";
import { FlagError, repeatedFlag } from "../server/driver-flags";
import { hostArg, listenError } from "../server/host-flag";
import { stopOnSignals, textReport } from "../server/stop-signals";
import { parseDriverAddress } from "./live-proxy";
import { startLab } from "./server";

export const LAB_USAGE = `csi-lab lab — the lab in a browser: one call's bytes, a volume's life, a replay

Usage:
  csi-lab lab [--host 127.0.0.1] [--port 7070] [--driver 127.0.0.1:9810]

Serves a web page (everything in this package: no network needed) with three views:
  1. One call, three layers: pick a method, codec, transport and faults, and step
     through the call the playground's engine makes (as \`csi-lab rpc walkthrough\`):
     every byte of every frame, time per layer, faults on a two-lane timeline.
  2. A volume's life, live: the calls a running driver serves, as a sequence diagram,
     grouped per volume. Start the driver with --metrics-address (it serves /events
     there) and type that address in the page; a pod's port works after
     \`kubectl port-forward\`.
  3. Replay without a cluster: an example of deploy/examples played against a real
     driver (as root: real mounts, in a private mount namespace and a scratch
     directory removed afterwards), each call next to the Kubernetes change behind it.

Flags:
  --host HOST          address to listen on (default 127.0.0.1: this machine only;
                       0.0.0.0: every interface)
  --port PORT          port (default 7070; 0 = any free port)
  --driver HOST:PORT   the driver address the live view proposes (default 127.0.0.1:9810)
  -h, --help           this text

Keys on the page: 1, 2, 3 switch views; ← and → (or p and n) step through a call;
arrow keys move over the bytes of a step; t switches light and dark.

Example:
  sudo npx csi-lab driver --metrics-address 127.0.0.1:9810 &   # for the live view
  npx csi-lab lab                                            # open the address it prints
`;

export async function main(argv: string[]): Promise<void> {
  const options = { host: { type: "string" }, port: { type: "string" }, driver: { type: "string" }, help: { type: "boolean", short: "h" } } as const;
  let values: { host?: string; port?: string; driver?: string; help?: boolean };
  try {
    const parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: false, tokens: true });
    values = parsed.values;
    const repeated = repeatedFlag(parsed.tokens, options);
    if (repeated) throw new Error(repeated);
  } catch (err) {
    // node:util's messages can run over several lines; a refused start is one.
    throw new FlagError(`lab: ${(err as Error).message.replace(/\s*\n\s*/g, " ")} (csi-lab lab --help)`);
  }
  if (values.help) return void process.stdout.write(LAB_USAGE);
  const port = Number(values.port ?? 7070);
  if (!/^\d+$/.test(values.port ?? "7070") || port > 65535) throw new FlagError(`lab: --port ${JSON.stringify(values.port)}: a port number, 0-65535`);
  let host: string;
  try {
    host = hostArg(values.host, true);
  } catch (err) {
    throw new FlagError(`lab: ${(err as Error).message}`);
  }
  const driver = values.driver ?? "127.0.0.1:9810";
  try {
    parseDriverAddress(driver);
  } catch (err) {
    throw new FlagError(`lab: --driver: ${(err as Error).message}`);
  }
  // Ctrl-C, SIGTERM or the end of the process that started it stop the lab (stop-signals.ts).
  const stop = stopOnSignals("csi-lab lab", textReport("csi-lab lab"));
  const lab = await startLab({ host, port, driver }).catch((err: NodeJS.ErrnoException) => {
    const e = listenError(err, host, port);
    throw e instanceof FlagError ? new FlagError(`lab: ${e.message}`) : new Error(`lab: ${e.message}`);
  });
  stop.serving(() => lab.close());
  process.stdout.write(`csi-lab lab: open ${lab.url} (Ctrl-C to stop)\n`);
  if (host !== "127.0.0.1" && host !== "::1" && host !== "localhost") {
    process.stdout.write("Note: listening beyond this machine; anyone who can reach it can run calls (and, as root, replays).\n");
  }
}
