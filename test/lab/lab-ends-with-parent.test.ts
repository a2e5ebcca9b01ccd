// `csi-lab lab` ends with the process that started it, as the driver and
// `rpc serve` do: orphaned, it would keep its port (7070 by default), and
// the next `csi-lab lab` would fail. It says why on stderr, stops a replay
// under way, closes its listener and exits.
import assert from "node:assert/strict";
import { parentOf, portFree, StartedCommand, throughNpx, throughShell } from "../rpc-demo/started-by-shell";

const OPEN = /^csi-lab lab: open http:\/\/127\.0\.0\.1:(\d+)\/ /m;

describe("csi-lab lab, when the process that started it ends", () => {
  let lab: StartedCommand | undefined;
  afterEach(() => lab?.cleanup());
  const port = (s: StartedCommand) => Number(OPEN.exec(s.stdout)![1]);

  it("the shell that ran `csi-lab lab &` is killed: the lab says why, exits, and its port is free again", async () => {
    lab = await StartedCommand.start(throughShell(["lab", "--port", "0"]), OPEN);
    const shell = lab.proc.pid!;
    assert.equal(parentOf(lab.pid), shell, "the shell is the lab's parent");
    assert.equal(await portFree("tcp", "127.0.0.1", port(lab)), false, "the lab holds its port");
    lab.proc.kill("SIGKILL"); // nothing is forwarded: only the kernel can tell the lab
    await lab.ended();
    assert.match(lab.stderr, new RegExp(`^csi-lab lab: stopping: its parent process \\(pid ${shell}\\) ended$`, "m"));
    assert.equal(await portFree("tcp", "127.0.0.1", port(lab)), true, "port free again");
  });

  it("npm, which ran it for `npx csi-lab lab`, is sent SIGTERM: the lab stops too", async function () {
    this.timeout(60_000);
    lab = await StartedCommand.start(throughNpx(["lab", "--port", "0"]), OPEN);
    const shell = parentOf(lab.pid);
    lab.proc.kill("SIGTERM");
    await lab.ended();
    assert.match(lab.stderr, new RegExp(`^csi-lab lab: stopping: its parent process \\(pid ${shell}\\) ended$`, "m"));
    assert.equal(await portFree("tcp", "127.0.0.1", port(lab)), true, "port free again");
  });
});
