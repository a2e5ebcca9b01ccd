/**
 * How a benchmark starts the driver: as the installed command runs it.
 *
 * bin/csi-lab.js names the node flags it runs with on its #! line (a small
 * young generation, see the file). A benchmark that ran `node bin/csi-lab.js`
 * would measure a different process than the one that ships, so it reads
 * those flags and passes them to this node.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";

export const DRIVER_BIN = path.resolve(__dirname, "../../bin/csi-lab.js");

/** node's arguments for running bin/csi-lab.js with `args`: the #! line's flags, the file, then `args`. */
export function driverArgs(args: string[]): string[] {
  const shebang = readFileSync(DRIVER_BIN, "utf8").split("\n", 1)[0]!;
  const words = shebang.replace(/^#!\s*/, "").split(/\s+/);
  const flags = words.slice(words.indexOf("node") + 1);
  return [...flags, DRIVER_BIN, ...args];
}
