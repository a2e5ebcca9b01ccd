// Telling a slow tool from a stuck one: real processes, watched from /proc.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { Code } from "../../src/csi/errors";
import { runTool } from "../../src/storage/copy-content";
import { nfsIo, watchForStall } from "../../src/storage/stall-watch";

/** PIDs of processes whose command line is exactly `argv`. */
function running(argv: string[]): string[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8") === argv.join("\0") + "\0";
      } catch {
        return false;
      }
    });
}

describe("stall watch", () => {
  it("leaves a tool that keeps writing alone, and reports it once it stops", async () => {
    const writer = spawn("yes", { stdio: ["ignore", "ignore", "ignore"] });
    try {
      let stalled = false;
      const stop = watchForStall(writer.pid!, ["/"], 500, () => (stalled = true));
      // Twice the limit, writing all along: never taken for stuck.
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(stalled, false);
      stop();
      // Stopped (as a tool asleep on a hung server is): nothing moves any more.
      writer.kill("SIGSTOP");
      await new Promise<void>((resolve) => watchForStall(writer.pid!, ["/"], 100, resolve));
    } finally {
      writer.kill("SIGKILL");
    }
  });

  it("a watched tool that makes no progress is killed and its copy answers UNAVAILABLE, naming the share", async () => {
    const argv = ["sleep", `60.${process.pid}`];
    const sleeper = runTool(argv[0]!, argv.slice(1), undefined, { paths: ["/"], afterMs: 200, what: "from share /srv/x" });
    await assert.rejects(sleeper, (e: { code: number; message: string }) => {
      assert.equal(e.code, Code.UNAVAILABLE);
      assert.match(e.message, /^sleep made no progress for 0\.2 s on a copy from share \/srv\/x, and was stopped; the share may be hung or its server unreachable$/);
      return true;
    });
    for (let i = 0; i < 500 && running(argv).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(running(argv), [], "the tool was killed");
  });

  it("reads an NFS mount's completed I/O from mountstats, not its tries", () => {
    const stats = (ops: number, trans: number, idle: number) =>
      [
        "device proc mounted on /proc with fstype proc",
        `device srv:/export mounted on /var/lib/csi\\040lab/.views/ab12 with fstype nfs4 statvers=1.1`,
        "\topts:\trw,vers=4.2,hard,proto=tcp,timeo=600,retrans=2",
        `\tevents:\t${trans} 0 0 0 0 0 0 0`,
        `\tbytes:\t${ops * 4096} 0 0 0 ${ops * 4096} 0 ${ops} 0`,
        "\tRPC iostats version: 1.1  p/v: 100003/4 (nfs)",
        `\txprt:\ttcp 0 0 1 0 ${idle} ${trans} ${trans} 0 ${trans} 0 2 0 0`,
        "\tper-op statistics",
        `\t        NULL: 1 1 0 44 24 0 0 0 0`,
        `\t        READ: ${ops} ${trans} 0 0 0 0 0 0 0`,
        "device srv:/other mounted on /mnt with fstype nfs4 statvers=1.1",
        "\tbytes:\t9 9 9 9 9 9 9 9",
      ].join("\n");
    const at = "/var/lib/csi lab/.views/ab12";
    assert.equal(nfsIo(stats(3, 3, 10), at), nfsIo(stats(3, 7, 99), at), "retransmissions and idle time are not progress");
    assert.notEqual(nfsIo(stats(3, 3, 10), at), nfsIo(stats(4, 4, 10), at), "an answered READ is");
    assert.equal(nfsIo(stats(3, 3, 10), "/not/there"), "");
  });
});
