// Where only a local share can say which mount is a volume's (the driver restarted, and its records of what it mounted went with it) and
// the share gives no answer — its agent's deadline passes, or a tool stopped there is still stuck in the kernel — every node call answers
// UNAVAILABLE and leaves every mount and directory as it is: "not the volume's" would be a guess, and the kubelet retries UNAVAILABLE.
import assert from "node:assert/strict";
import { promises as fsp, readdirSync, readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, literal, Mode, mountCapability, mountsAt, startDriver, uniqueName, type DriverProcess } from "./harness";
import { processAlive, until } from "./processes";
import { skipUnlessInstalled } from "./programs";
import { makeStalledShare, type StalledShare } from "./stalled-share";

const RWX = Mode.MULTI_NODE_MULTI_WRITER;
const PATIENT = { timeoutMs: 20_000 };

/** Processes whose parent is `parent`, with their command line. */
function childrenOf(parent: number): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) !== parent || state === "Z" || state === "X") continue;
      found.push({ pid: Number(e), cmdline: readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").join(" ") });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Has process `pid` exited (gone, or a zombie)? */
const exited = (pid: number): boolean => !processAlive(pid);

/**
 * A local-share volume staged and published by `d`, then `d` restarted: only the share can now say which mounts are the volume's.
 * mounts() is what is at the staging and target paths (mount ID, device, root), to show a call left them as they were.
 */
async function stagedAndPublished(d: DriverProcess, parameters: Record<string, string>) {
  const cap = mountCapability(RWX);
  const v = (await d.client.controller.createVolume({ name: uniqueName("pvc"), volumeCapabilities: [cap], parameters }, PATIENT)).volume!;
  const req = { volumeId: v.volumeId, volumeContext: v.volumeContext, volumeCapability: cap };
  const stagingTargetPath = d.path(uniqueName("stage"));
  const targetPath = d.path(uniqueName("pod"));
  await d.client.node.nodeStageVolume({ ...req, stagingTargetPath }, PATIENT);
  await d.client.node.nodePublishVolume({ ...req, stagingTargetPath, targetPath }, PATIENT);
  await fsp.writeFile(path.join(targetPath, "f"), "kept");
  const mounts = () => mountsAt(stagingTargetPath, targetPath);
  const before = mounts();
  assert.equal(before.length, 2);
  await d.restart();
  const volumeId = v.volumeId;
  const calls: [string, () => Promise<unknown>][] = [
    ["NodeStageVolume", () => d.client.node.nodeStageVolume({ ...req, stagingTargetPath }, PATIENT)],
    ["NodePublishVolume", () => d.client.node.nodePublishVolume({ ...req, stagingTargetPath, targetPath }, PATIENT)],
    ["NodeExpandVolume", () => d.client.node.nodeExpandVolume({ volumeId, volumePath: targetPath, capacityRange: { requiredBytes: 1 } }, PATIENT)],
    ["NodeUnpublishVolume", () => d.client.node.nodeUnpublishVolume({ volumeId, targetPath }, PATIENT)],
    ["NodeUnstageVolume", () => d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath }, PATIENT)],
  ];
  /** Once the share answers: every call is OK, the repeated ones leave the mounts, and the undo calls take them away. */
  const answersAgain = async () => {
    for (const [, call] of calls.slice(0, 3)) await call();
    assert.deepEqual(mounts(), before, "a healthy staged and published volume is left as it is");
    assert.equal(await fsp.readFile(path.join(targetPath, "f"), "utf8"), "kept");
    for (const [, call] of calls.slice(3)) await call();
    assert.deepEqual(mounts(), [], "unpublished and unstaged");
  };
  return { v, stagingTargetPath, targetPath, mounts, before, calls, answersAgain };
}

describe("A local share whose agent gives no answer and dies at its deadline, after a driver restart", function () {
  this.timeout(60_000);
  let d: DriverProcess;
  before(async () => {
    d = await startDriver({ extraArgs: ["--share-timeout", "1"] });
  });
  after(async () => {
    for (const a of agents()) process.kill(a.pid, "SIGCONT");
    await destroyDriver(d);
  });

  // What an agent waiting on a hung NFS server does (the NFS client's waits are killable): it answers nothing, and dies when killed at
  // its deadline, leaving no stuck tool behind. A stopped agent does just that; a frozen disk (stalled-share.ts) leaves it asleep for
  // good instead, which is the other case, below.
  const agents = () => childrenOf(d.proc.pid!).filter((c) => c.cmdline.includes("share-agent.js"));

  it("NodeStage, NodePublish, NodeExpand, NodeUnpublish and NodeUnstageVolume answer UNAVAILABLE 'did not answer' and touch nothing", async () => {
    const s = await stagedAndPublished(d, NFS_LOCAL.parameters(d));
    for (const [rpc, call] of s.calls) {
      // An agent, idle after a call that looked at the share, which the next call's question to the share goes to.
      await d.client.node.nodeGetVolumeStats({ volumeId: s.v.volumeId, volumePath: s.targetPath }, PATIENT);
      const stopped = agents().map((a) => a.pid);
      assert.ok(stopped.length > 0);
      for (const pid of stopped) process.kill(pid, "SIGSTOP");
      const noAnswer = new RegExp(`^share ${literal(d.share)} did not answer within 1 s \\(realpath\\)`);
      await expectCode(call(), Code.UNAVAILABLE, noAnswer);
      await until("the agent killed at its deadline to exit", () => stopped.every(exited), 60_000);
      assert.deepEqual(s.mounts(), s.before, `${rpc}: the staged and published mounts are the ones made before`);
      assert.equal((await fsp.stat(s.targetPath)).isDirectory(), true);
    }
    await s.answersAgain();
  });
});

describe("A local share on which a stopped tool is still stuck, after a driver restart", function () {
  this.timeout(120_000);
  let d: DriverProcess | undefined;
  let share: StalledShare | undefined;
  before(async function () {
    skipUnlessInstalled(this, "fsfreeze", "mkfs.ext2");
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-test-"));
    share = await makeStalledShare(path.join(dir, "share"));
    d = await startDriver({ dir, extraArgs: ["--share-timeout", "1"] });
  });
  after(async () => {
    await share?.resume();
    await destroyDriver(d);
    await share?.cleanup();
  });

  it("NodeUnpublishVolume and NodeUnstageVolume answer UNAVAILABLE naming it, not 'not the volume's', and touch nothing", async () => {
    const s = await stagedAndPublished(d!, NFS_LOCAL.parameters(d!));
    await share!.stall();
    // A snapshot's flush never returns: its sync, killed, sleeps on in the kernel until the share's disk is thawed.
    const snapshot = { name: uniqueName("snap"), sourceVolumeId: s.v.volumeId };
    await expectCode(d!.client.controller.createSnapshot(snapshot, PATIENT), Code.UNAVAILABLE, /^sync made no progress/);
    const stuck = childrenOf(d!.proc.pid!).filter((c) => c.cmdline.startsWith("sync "));
    assert.equal(stuck.length, 1);
    const refused = new RegExp(`^the sync \\(pid ${stuck[0]!.pid}\\) of an earlier copy on share ${literal(share!.path)} .*still stuck`);
    for (const [rpc, call] of s.calls) {
      await expectCode(call(), Code.UNAVAILABLE, refused);
      assert.deepEqual(s.mounts(), s.before, `${rpc}: the staged and published mounts are the ones made before`);
      assert.equal((await fsp.stat(s.targetPath)).isDirectory(), true);
    }
    await share!.resume();
    await until("the stopped sync to exit once the share answers", () => exited(stuck[0]!.pid), 60_000);
    await s.answersAgain();
  });
});
