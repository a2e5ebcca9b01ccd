// A copy on a share that stops answering (cp or its flush asleep in the kernel) is stopped and answered UNAVAILABLE after about one share
// timeout, committing nothing; what it half made goes once the stopped tool has exited, and until then calls on that share are answered at
// once and start nothing more. The same holds for a share agent killed at its deadline, and the rm it was running.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promises as fsp, readdirSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, literal, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { skipUnlessInstalled } from "./programs";
import { processAlive, processOf, until as waitUntil } from "./processes";
import { makeStalledShare, type StalledShare } from "./stalled-share";
import { readMountInfo } from "../../src/mount/mountinfo";
import { snapshotKeyOf } from "../../src/backends/nfs/snapshot-id";
import { StuckTools } from "../../src/storage/stuck-tools";

const RWX = Mode.MULTI_NODE_MULTI_WRITER;
// The deadline only keeps a driver that never answers from hanging the test: the answer must come long before it.
const PATIENT = { timeoutMs: 20_000 };


/** The copy tools (cp, sync) that the driver `d` started and that have not exited. */
function toolsOf(d: DriverProcess): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => {
      const p = processOf(pid);
      return p !== undefined && p.parent === d.proc.pid && ["cp", "sync"].includes(p.command) && processAlive(pid);
    })
    .sort((a, b) => a - b);
}

/** The share agents of driver `d` asleep in the kernel (killed or not), and every rm that has not exited, wherever it now belongs. */
function helpersOf(d: DriverProcess): { agents: number[]; rm: number[] } {
  const all = readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .sort((a, b) => a - b);
  const agents = all.filter((pid) => {
    const p = processOf(pid);
    return p !== undefined && p.parent === d.proc.pid && p.command === "node" && p.state === "D";
  });
  return { agents, rm: all.filter((pid) => processOf(pid)?.command === "rm" && processAlive(pid)) };
}

// Each test freezes and thaws a file system on a loop device whose image is on this machine's disk, and what the
// share flushes goes down to that disk: on a busy shared disk a flush can take many seconds. The waits below are
// for things that do happen; they are long so that a slow disk does not fail a test, and say what they waited for.
const WAIT_MS = 60_000;

const until = (what: string, done: () => boolean | Promise<boolean>) => waitUntil(what, done, WAIT_MS);

/**
 * A driver with `--share-timeout seconds` whose share can be made to stop
 * answering, and what the tests look at. resume() thaws the share and waits
 * for the tools the driver stopped on it to exit, as they do once it
 * answers: until then, calls on the share are refused.
 */
function onStallingShare(seconds: number) {
  let d: DriverProcess | undefined;
  let share: StalledShare | undefined;
  const resume = async (pids = d ? toolsOf(d) : []) => {
    await share?.resume();
    await until("the stopped tools to exit once the share answers", () => pids.every((pid) => !processAlive(pid)));
  };
  before(async function () {
    skipUnlessInstalled(this, "fsfreeze", "mkfs.ext2");
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-test-"));
    share = await makeStalledShare(path.join(dir, "share"));
    d = await startDriver({ dir, extraArgs: ["--share-timeout", String(seconds)] });
  });
  afterEach(() => resume());
  after(async () => {
    await share?.resume();
    await destroyDriver(d);
    await share?.cleanup();
  });

  const meta = (...parts: string[]) => path.join(share!.path, ".csi-lab", ...parts);
  return {
    get d() {
      return d!;
    },
    get share() {
      return share!;
    },
    resume,
    meta,
    create: async (source?: { snapshot?: { snapshotId: string }; volume?: { volumeId: string } }, name = uniqueName("pvc")) =>
      (
        await d!.client.controller.createVolume(
          { name, volumeCapabilities: [mountCapability(RWX)], parameters: NFS_LOCAL.parameters(d!), ...(source ? { volumeContentSource: source } : {}) },
          PATIENT,
        )
      ).volume!,
    dirOf: (v: { volumeContext?: Record<string, string> }) => path.join(share!.path, v.volumeContext!["csi-lab/subDir"]!),
    /** What is on the share: its volumes, their markers, the copies under way. */
    onShare: async () => ({
      volumes: (await fsp.readdir(share!.path)).sort(),
      markers: (await fsp.readdir(meta("volumes")).catch(() => [])).sort(),
      tmp: await fsp.readdir(meta("tmp")).catch(() => []),
    }),
    noViews: async () => {
      assert.deepEqual(readMountInfo().filter((m) => m.mountPoint.startsWith(d!.root + "/")).map((m) => m.mountPoint), [], "no view stays mounted");
      assert.deepEqual(await fsp.readdir(path.join(d!.root, "snapshots", ".views")), [], "nor its directory");
    },
  };
}

describe("Copies on a share that stops answering", function () {
  this.timeout(3 * WAIT_MS);
  const t = onStallingShare(1);

  it("CreateSnapshot whose flush never returns answers UNAVAILABLE, holds no lock, and a retry once the share is back takes it", async () => {
    const v = await t.create();
    await fsp.writeFile(path.join(t.dirOf(v), "f"), "before the share stopped");
    await t.share.stall();
    const req = { name: uniqueName("snap"), sourceVolumeId: v.volumeId };
    await expectCode(t.d.client.controller.createSnapshot(req, PATIENT), Code.UNAVAILABLE, /^sync made no progress for 1 s on a copy .*share .*hung/);
    await t.noViews();
    // The call's locks are gone with its answer: a retry is answered (its flush still sleeps on the share), it is not ABORTED.
    await expectCode(t.d.client.controller.createSnapshot(req, PATIENT), Code.UNAVAILABLE);
    await t.resume();
    const key = snapshotKeyOf(req.name);
    await assert.rejects(fsp.stat(t.meta("snapshots", `${key}.json`)), { code: "ENOENT" }, "nothing was committed");
    const snap = (await t.d.client.controller.createSnapshot(req, PATIENT)).snapshot!;
    assert.equal(snap.readyToUse, true);
    assert.equal(await fsp.readFile(t.meta("snapshots", key, "f"), "utf8"), "before the share stopped");
    assert.deepEqual((await t.onShare()).tmp, [], "the stopped copies were cleared away");
  });

  it("CreateVolume from a snapshot whose copy cannot read the share answers UNAVAILABLE and makes no volume", async () => {
    const v = await t.create();
    const bytes = randomBytes(1024 * 1024);
    await fsp.writeFile(path.join(t.dirOf(v), "f"), bytes);
    const snapshotId = (await t.d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: v.volumeId }, PATIENT)).snapshot!.snapshotId!;
    const content = t.meta("snapshots", snapshotId.split(":").at(-1)!, "f");
    await t.share.evict(content);
    const before = await t.onShare();
    await t.share.stall();
    await fsp.writeFile(path.join(t.share.path, "pending"), "a write the disk never takes");
    await t.share.stallReads(path.join(t.share.path, "pending"));
    const name = uniqueName("restored");
    await expectCode(t.create({ snapshot: { snapshotId } }, name), Code.UNAVAILABLE, /^cp made no progress for 1 s on a copy within share .*, and was stopped; the share may be hung/);
    await t.noViews();
    await t.resume();
    const after = await t.onShare();
    assert.deepEqual({ ...after, volumes: after.volumes.filter((e) => e !== "pending"), tmp: [] }, { ...before, tmp: [] }, "no volume directory, no marker");
    const restored = await t.create({ snapshot: { snapshotId } }, name);
    assert.deepEqual(await fsp.readFile(path.join(t.dirOf(restored), "f")), bytes);
    assert.deepEqual((await t.onShare()).tmp, []);
  });

  it("a clone whose flush never returns answers UNAVAILABLE and makes no volume; the retry makes it", async () => {
    const v = await t.create();
    await fsp.writeFile(path.join(t.dirOf(v), "f"), "cloned");
    const before = await t.onShare();
    await t.share.stall();
    const name = uniqueName("clone");
    await expectCode(t.create({ volume: { volumeId: v.volumeId! } }, name), Code.UNAVAILABLE, /^sync made no progress for 1 s on a copy .*share .*hung/);
    await t.noViews();
    await t.resume();
    assert.deepEqual({ ...(await t.onShare()), tmp: [] }, { ...before, tmp: [] }, "no volume directory, no marker");
    const clone = await t.create({ volume: { volumeId: v.volumeId! } }, name);
    assert.equal(await fsp.readFile(path.join(t.dirOf(clone), "f"), "utf8"), "cloned");
    assert.deepEqual((await t.onShare()).tmp, []);
  });
});

describe("Tools stopped on a share that stops answering", function () {
  this.timeout(3 * WAIT_MS);
  // Long enough that a call's own work is small beside it: a failed copy answers after about one timeout, not two.
  const SECONDS = 4;
  const t = onStallingShare(SECONDS);
  const answersWithin = async (p: Promise<unknown>, message: RegExp) => {
    const start = performance.now();
    await expectCode(p, Code.UNAVAILABLE, message);
    const took = (performance.now() - start) / 1000;
    assert.ok(took < 1.75 * SECONDS, `answered after ${took.toFixed(1)} s (share timeout ${SECONDS} s)`);
  };

  it("a failed copy answers without waiting for its clean-up on the hung share; the half-made copy goes once its flush has exited", async () => {
    const v = await t.create();
    await fsp.writeFile(path.join(t.dirOf(v), "f"), "before the share stopped");
    await t.share.stall();
    const req = { name: uniqueName("snap"), sourceVolumeId: v.volumeId };
    await answersWithin(t.d.client.controller.createSnapshot(req, PATIENT), /^sync made no progress for 4 s on a copy within share /);
    await t.noViews();
    assert.equal((await t.onShare()).tmp.length, 1, "the half-made copy, named for its snapshot, waits for the stopped flush");
    await t.resume();
    // Nothing asks for it: the driver removes it by itself once the flush has exited.
    await until("the half-made copy to be removed", async () => (await t.onShare()).tmp.length === 0);
    await assert.rejects(fsp.stat(t.meta("snapshots", `${snapshotKeyOf(req.name)}.json`)), { code: "ENOENT" }, "nothing was committed");
    assert.equal((await t.d.client.controller.createSnapshot(req, PATIENT)).snapshot!.readyToUse, true);
  });

  it("while a stopped flush sleeps in the kernel, calls on its share answer UNAVAILABLE at once and start nothing; once it exits they work", async () => {
    const v = await t.create();
    await fsp.writeFile(path.join(t.dirOf(v), "f"), "kept");
    await t.share.stall();
    const req = { name: uniqueName("snap"), sourceVolumeId: v.volumeId };
    await expectCode(t.d.client.controller.createSnapshot(req, PATIENT), Code.UNAVAILABLE, /^sync made no progress/);
    const stuck = toolsOf(t.d);
    assert.equal(stuck.length, 1, "the stopped flush sleeps on, unkillable, until the share answers");
    const refused = new RegExp(`^the sync \\(pid ${stuck[0]}\\) of an earlier copy on share ${literal(t.share.path)} .*still stuck in the kernel`);
    const clone = uniqueName("clone");
    for (let i = 0; i < 3; i++) {
      // Each would otherwise leave one more process asleep on the share (and take a share timeout to say so).
      await answersWithin(t.d.client.controller.createSnapshot(req, PATIENT), refused);
      await answersWithin(t.create({ volume: { volumeId: v.volumeId! } }, clone), refused);
      await answersWithin(t.d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: v.volumeId }, PATIENT), refused);
    }
    assert.deepEqual(toolsOf(t.d), stuck, "no other tool was started");
    await t.resume();
    assert.equal((await t.d.client.controller.createSnapshot(req, PATIENT)).snapshot!.readyToUse, true);
    assert.equal(await fsp.readFile(path.join(t.dirOf(await t.create({ volume: { volumeId: v.volumeId! } }, clone)), "f"), "utf8"), "kept");
    assert.deepEqual((await t.onShare()).tmp, []);
  });

  it("a driver killed -9 while a failed clone's half-made copy waits for its stopped flush: the next driver's retry removes it and makes the clone", async () => {
    const v = await t.create();
    await fsp.writeFile(path.join(t.dirOf(v), "f"), "cloned");
    const before = await t.onShare();
    await t.share.stall();
    const name = uniqueName("clone");
    await answersWithin(t.create({ volume: { volumeId: v.volumeId! } }, name), /^sync made no progress for 4 s/);
    const stuck = toolsOf(t.d);
    assert.equal((await t.onShare()).tmp.length, 1, "the half-made copy waits for the stopped flush");
    await t.d.stop("SIGKILL");
    await t.resume(stuck);
    assert.equal((await t.onShare()).tmp.length, 1, "a killed driver removes nothing");
    assert.deepEqual({ ...(await t.onShare()), tmp: [] }, { ...before, tmp: [] }, "no volume directory, no marker");
    await t.d.start();
    const clone = await t.create({ volume: { volumeId: v.volumeId! } }, name);
    assert.equal(await fsp.readFile(path.join(t.dirOf(clone), "f"), "utf8"), "cloned");
    assert.deepEqual((await t.onShare()).tmp, [], "the retry removed the half-made copy");
  });
});

describe("A volume staged from a share on which a tool stopped is still stuck", function () {
  this.timeout(3 * WAIT_MS);
  const t = onStallingShare(1);

  it("after a restart (its mounts not remembered): node calls answer UNAVAILABLE naming the tool, not 'not ours', and touch no mount", async () => {
    const v = await t.create();
    await fsp.writeFile(path.join(t.dirOf(v), "f"), "kept");
    const cap = mountCapability(RWX);
    const req = { volumeId: v.volumeId, volumeContext: v.volumeContext, volumeCapability: cap };
    const stagingTargetPath = t.d.path(uniqueName("stage"));
    const restage = () => t.d.client.node.nodeStageVolume({ ...req, stagingTargetPath }, PATIENT);
    await restage();
    const staged = () => readMountInfo().filter((m) => m.mountPoint === stagingTargetPath).map((m) => `${m.id} ${m.device} ${m.root}`);
    const before = staged();
    assert.equal(before.length, 1);
    // Only the share can now say which mount is the volume's: the records of what the driver mounted went with the old process.
    await t.d.restart();

    await t.share.stall();
    const snapshot = { name: uniqueName("snap"), sourceVolumeId: v.volumeId };
    await expectCode(t.d.client.controller.createSnapshot(snapshot, PATIENT), Code.UNAVAILABLE, /^sync made no progress/);
    const stuck = toolsOf(t.d);
    assert.equal(stuck.length, 1);
    const refused = new RegExp(`^the sync \\(pid ${stuck[0]}\\) of an earlier copy on share ${literal(t.share.path)} .*still stuck in the kernel`);
    await expectCode(restage(), Code.UNAVAILABLE, refused);
    const publish = { ...req, stagingTargetPath, targetPath: t.d.path(uniqueName("pod")) };
    await expectCode(t.d.client.node.nodePublishVolume(publish, PATIENT), Code.UNAVAILABLE, refused);
    const expand = () =>
      t.d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: stagingTargetPath, capacityRange: { requiredBytes: 1, limitBytes: 0 } });
    await expectCode(expand(), Code.UNAVAILABLE, refused);
    assert.deepEqual(staged(), before, "the staged mount is the one made before");

    await t.resume();
    await restage();
    assert.deepEqual(staged(), before, "a healthy staged volume is left as it is");
    await expand();
    assert.equal(await fsp.readFile(path.join(stagingTargetPath, "f"), "utf8"), "kept");
    await t.d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath });
  });
});

describe("Share agents stopped at their deadline on a share that stops answering", function () {
  this.timeout(3 * WAIT_MS);
  const t = onStallingShare(1);
  const refusedBy = (tool: string, pid: number) =>
    new RegExp(`^the ${tool} \\(pid ${pid}\\) of an earlier call on share ${literal(t.share.path)} was stopped \\d+ s ago at its deadline and is still stuck in the kernel`);

  it("an agent asleep in an fsync: calls on its share answer UNAVAILABLE at once naming it, start no other agent, and work once it exits", async () => {
    const v = await t.create();
    await t.share.stall();
    const name = uniqueName("pvc");
    // The new volume's marker is written with an fsync, which never returns.
    await expectCode(t.create(undefined, name), Code.UNAVAILABLE, /did not answer within 1 s \(writeRecord\); the share may be hung/);
    const { agents } = helpersOf(t.d);
    assert.equal(agents.length, 1, "the killed agent sleeps on in the kernel until the share answers");
    const refused = refusedBy("share agent", agents[0]!);
    for (let i = 0; i < 3; i++) {
      await expectCode(t.create(undefined, name), Code.UNAVAILABLE, refused);
      await expectCode(t.d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: v.volumeId }, PATIENT), Code.UNAVAILABLE, refused);
      await expectCode(t.d.client.controller.deleteVolume({ volumeId: v.volumeId }, PATIENT), Code.UNAVAILABLE, refused);
    }
    assert.deepEqual(helpersOf(t.d).agents, agents, "no other agent was started on the share");
    await t.resume(agents);
    const made = await t.create(undefined, name);
    assert.ok((await fsp.stat(t.dirOf(made))).isDirectory());
    await until("the failed create's temporary directory to be removed", async () => (await t.onShare()).tmp.length === 0);
  });

  it("an rm of the agent's asleep on the share: it is killed with its agent, and calls on the share answer UNAVAILABLE at once naming it", async () => {
    const v = await t.create();
    const req = { name: uniqueName("snap"), sourceVolumeId: v.volumeId };
    // What a driver killed mid-copy leaves: a half-made copy of the snapshot in the share's tmp, removed by the next try of its name.
    // Its last write is still on its way to the disk, which takes nothing: the rm that removes it waits for that write.
    const left = t.meta("tmp", `${snapshotKeyOf(req.name)}.0123abcd`);
    await fsp.mkdir(left, { recursive: true });
    await t.share.stall();
    await fsp.writeFile(path.join(left, "f"), randomBytes(64 * 1024));
    await t.share.stallFlush();
    await expectCode(t.d.client.controller.createSnapshot(req, PATIENT), Code.UNAVAILABLE, /did not answer within 1 s \(clean\); the share may be hung/);
    const { rm } = helpersOf(t.d);
    assert.equal(rm.length, 1, "the killed rm sleeps on in the kernel until the share answers");
    for (let i = 0; i < 3; i++) {
      await expectCode(t.d.client.controller.createSnapshot(req, PATIENT), Code.UNAVAILABLE, refusedBy("rm", rm[0]!));
      await expectCode(t.create(), Code.UNAVAILABLE, refusedBy("rm", rm[0]!));
    }
    assert.deepEqual(helpersOf(t.d).rm, rm, "no other rm was started on the share");
    await t.resume(rm);
    assert.equal((await t.d.client.controller.createSnapshot(req, PATIENT)).snapshot!.readyToUse, true);
    assert.deepEqual((await t.onShare()).tmp, [], "the half-made copy was removed");
  });
});

describe("Which stuck tool a refusal names", function () {
  this.timeout(3 * WAIT_MS);
  let share: StalledShare | undefined;
  let dir: string | undefined;
  before(async function () {
    skipUnlessInstalled(this, "fsfreeze", "mkfs.ext2");
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-test-"));
    share = await makeStalledShare(path.join(dir, "share"));
  });
  after(async () => {
    await share?.cleanup();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it("names the one asleep in the kernel, not one killed with it that is still on its way out", async () => {
    // A share agent killed at its deadline is on its way out for a moment while the rm it ran sleeps on the share:
    // both are remembered, and the refusal must name the rm, which is what keeps the share's calls waiting.
    const stuck = new StuckTools();
    const leaving = spawn("sleep", [`63.${process.pid}`], { stdio: "ignore" }); // alive, not in the kernel: the agent
    await share!.stall();
    await fsp.writeFile(path.join(share!.path, "f"), randomBytes(64 * 1024));
    const asleep = spawn("sync", ["--file-system", share!.path], { stdio: "ignore" });
    try {
      await until("the sync to sleep in the kernel", () => processOf(asleep.pid!)?.state === "D");
      stuck.add(["share /x"], "share agent", leaving);
      stuck.add(["share /x"], "rm", asleep);
      const refusal = (): string => {
        try {
          stuck.check("share /x");
        } catch (err) {
          return (err as Error).message;
        }
        return "no refusal";
      };
      const rm = new RegExp(`^the rm \\(pid ${asleep.pid}\\) of an earlier copy on share /x .*still stuck in the kernel`);
      // The sync sleeps in the kernel from now until the thaw; asked again for a moment in case this machine caught it
      // between two waits. Naming the first remembered (the sleep), as before, it never names the rm.
      let said = refusal();
      for (const start = performance.now(); !rm.test(said) && performance.now() - start < 5_000; said = refusal()) await new Promise((r) => setTimeout(r, 50));
      assert.match(said, rm, `the sync is ${processOf(asleep.pid!)?.state ?? "gone"}`);
      leaving.kill("SIGKILL");
    } finally {
      leaving.kill("SIGKILL");
      await share!.resume();
      await new Promise((r) => (asleep.exitCode !== null ? r(null) : asleep.once("exit", r)));
    }
    await stuck.gone("share /x");
    assert.equal(stuck.holds("share /x"), false);
  });
});
