// Another writer in a tree the driver removes: a process that works in a
// directory (its cwd follows the directory wherever it is moved), watches
// the subdirectory `sub` of it, and as soon as anything in `sub` is removed
// moves `sub` aside (to `sub.moved`) and puts a symlink to `target` in its
// place. What a pod on another node, or a process that kept a directory of
// a volume open, can do while a volume is deleted. Tests: a removal must
// never empty `target` through that link.
import { spawn } from "node:child_process";

const SCRIPT = `
  const fs = require("node:fs");
  const [dir, sub, target] = process.argv.slice(1);
  process.chdir(dir);
  fs.watch(sub, () => {
    fs.renameSync(sub, sub + ".moved");
    fs.symlinkSync(target, sub);
    process.exit(0);
  });
  console.log("watching");`;

export interface LinkSwapper {
  /** Settles once the swap is made (the process ends). */
  swapped: Promise<unknown>;
  stop(): void;
}

/** Start the swapper on `dir`/`sub`; resolves once it is watching. */
export async function startLinkSwapper(dir: string, sub: string, target: string): Promise<LinkSwapper> {
  const child = spawn(process.execPath, ["-e", SCRIPT, dir, sub, target], { stdio: ["ignore", "pipe", "inherit"] });
  const swapped = new Promise((resolve) => child.once("exit", resolve));
  try {
    await new Promise((resolve, reject) => {
      child.stdout.once("data", resolve);
      child.once("exit", () => reject(new Error("the swapping process ended before it watched")));
    });
  } catch (err) {
    child.kill();
    throw err;
  }
  return { swapped, stop: () => child.kill() };
}
