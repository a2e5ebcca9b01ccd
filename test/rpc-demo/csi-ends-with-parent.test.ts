// `csi-lab rpc csi` ends with the process that started it, as `rpc serve`
// and `rpc call` do, and takes the driver it started with it. Orphaned, it
// would go on with its calls; killed with its shell, the driver it started
// would be left to notice alone. The kernel tells it
// (src/server/parent-death.ts): it says why on stderr, lets the call in
// flight finish, deletes the volume it made, stops its driver (whose socket
// and directory go) and exits.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import { parentOf, running, StartedCommand, throughShell, until } from "./started-by-shell";

const CONNECTED = /^CSI explained: CreateVolume to the csi-lab driver on unix:\/\/(\S+)\s+\(started for this walkthrough\)$/m;

/** The `csi-lab driver` process `pid` started. */
function driverUnder(pid: number): number | undefined {
  for (const name of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      if (parentOf(Number(name)) === pid && readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0").includes("driver")) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

describe("csi-lab rpc csi, when the process that started it ends", () => {
  let csi: StartedCommand | undefined;
  let driver: number | undefined;
  afterEach(() => {
    if (driver !== undefined && running(driver)) process.kill(driver, "SIGKILL");
    csi?.cleanup();
  });

  it("its shell killed in the middle of a CreateVolume: it says why, finishes the call, deletes the volume, stops its driver and exits", async () => {
    csi = await StartedCommand.start(throughShell(["rpc", "csi", "--plain"]), CONNECTED);
    const shell = csi.proc.pid!;
    assert.equal(parentOf(csi.pid), shell, "the shell is its parent");
    driver = await until("the driver it started", () => driverUnder(csi!.pid));
    const socket = CONNECTED.exec(csi.stdout)![1]!;
    // The driver frozen, the first CreateVolume waits: the demo is caught in the middle.
    process.kill(driver, "SIGSTOP");
    csi.proc.kill("SIGKILL"); // nothing is forwarded: only the kernel can tell it
    await until(`it to stop:\n${csi.stdout}\n${csi.stderr}`, () => /stopping/.test(csi!.stderr));
    process.kill(driver, "SIGCONT");
    await csi.ended();
    assert.match(csi.stderr, new RegExp(`^csi-lab rpc csi: stopping: its parent process \\(pid ${shell}\\) ended$`, "m"));
    assert.doesNotMatch(csi.stdout, /== 2\./, "no new call once stopping");
    assert.match(csi.stdout, /DeleteVolume "hp-[0-9a-f]+": done/);
    await until("the driver it started to exit", () => !running(driver!) || undefined);
    assert.equal(existsSync(path.dirname(socket)), false, "the driver's socket and directory are gone");
  });
});
