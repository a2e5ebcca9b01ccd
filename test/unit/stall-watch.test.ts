// Telling a slow tool from a stuck one: real processes, watched from /proc.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { Code } from "../../src/csi/errors";
import { runTool } from "../../src/storage/copy-content";
import { nfsIo, watchForStall } from "../../src/storage/stall-watch";
import { StuckTools } from "../../src/storage/stuck-tools";

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

describe("tools stopped on a share", () => {
  const refused = (tool: string, pid: number | string, share = "share /srv/x") =>
    new RegExp(`^the ${tool} \\(pid ${pid}\\) of an earlier copy on ${share} was stopped \\d+ s ago for making no progress and is still stuck in the kernel; `);

  it("a tool that has not exited keeps every tool off its share, naming it; other shares go on; once it exits, tools run again", async () => {
    const stuck = new StuckTools();
    // Stands in for a killed tool asleep in the kernel: alive until we let it go.
    const sleeper = spawn("sleep", [`60.${process.pid}`], { stdio: "ignore" });
    stuck.add(["share /srv/x"], "sync", sleeper);
    const onX = { paths: ["/"], afterMs: 1000, what: "within share /srv/x", shares: { names: ["share /srv/x"], stuck } };
    const argv = ["sleep", `61.${process.pid}`];
    await assert.rejects(runTool(argv[0]!, argv.slice(1), undefined, onX), (e: { code: number; message: string }) => {
      assert.equal(e.code, Code.UNAVAILABLE);
      assert.match(e.message, refused("sync", sleeper.pid!));
      return true;
    });
    assert.deepEqual(running(argv), [], "it was never started");
    await runTool("true", [], undefined, { ...onX, what: "within share /srv/y", shares: { names: ["share /srv/y"], stuck } });
    sleeper.kill("SIGKILL");
    await stuck.gone("share /srv/x");
    assert.equal(stuck.holds("share /srv/x"), false);
    await runTool("true", [], undefined, onX);
  });

  it("a tool killed for making no progress is remembered on its shares until it exits", async () => {
    const stuck = new StuckTools();
    const shares = { names: ["share /srv/x", "share /srv/z"], stuck };
    await assert.rejects(runTool("sleep", [`62.${process.pid}`], undefined, { paths: ["/"], afterMs: 200, what: "from share /srv/x into share /srv/z", shares }), /made no progress/);
    // SIGKILL was sent as the call failed. A sleeping process dies of it within moments (one asleep on a hung
    // share would not, until the share answers), and the shares refuse only while /proc shows it alive: on a
    // busy machine it may be gone already. While it lives, both its shares refuse, naming it; the third never knew it.
    // (A tool that cannot die, asleep on a real hung share, is remembered in test/sanity/shared-hung-copy.test.ts.)
    assert.equal(stuck.holds("share /srv/y"), false);
    for (const share of ["share /srv/x", "share /srv/z"]) {
      try {
        stuck.check(share);
      } catch (e) {
        assert.equal((e as { code: number }).code, Code.UNAVAILABLE);
        assert.match((e as Error).message, refused("sleep", "\\d+", share));
        continue;
      }
      assert.deepEqual(running(["sleep", `62.${process.pid}`]), [], `the killed tool still lives, and ${share} let a call through`);
    }
    await stuck.gone("share /srv/x");
    assert.deepEqual([stuck.holds("share /srv/x"), stuck.holds("share /srv/z")], [false, false]);
  });
});
