// A copy on a share that stops answering (cp or its flush asleep in the kernel) is stopped and answered UNAVAILABLE, leaving nothing behind.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { skipUnlessInstalled } from "./programs";
import { makeStalledShare, type StalledShare } from "./stalled-share";
import { readMountInfo } from "../../src/mount/mountinfo";
import { snapshotKeyOf } from "../../src/backends/nfs/snapshot-id";

const RWX = Mode.MULTI_NODE_MULTI_WRITER;
// The deadline only keeps a driver that never answers from hanging the test: the answer must come long before it.
const PATIENT = { timeoutMs: 20_000 };

describe("Copies on a share that stops answering", function () {
  let d: DriverProcess | undefined;
  let share: StalledShare | undefined;
  before(async function () {
    skipUnlessInstalled(this, "fsfreeze", "mkfs.ext2");
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-test-"));
    share = await makeStalledShare(path.join(dir, "share"));
    d = await startDriver({ dir, extraArgs: ["--share-timeout", "1"] });
  });
  afterEach(async () => share?.resume());
  after(async () => {
    await share?.resume();
    await destroyDriver(d);
    await share?.cleanup();
  });

  const create = async (source?: { snapshot?: { snapshotId: string }; volume?: { volumeId: string } }, name = uniqueName("pvc")) =>
    (
      await d!.client.controller.createVolume(
        { name, volumeCapabilities: [mountCapability(RWX)], parameters: NFS_LOCAL.parameters(d!), ...(source ? { volumeContentSource: source } : {}) },
        PATIENT,
      )
    ).volume!;
  const dirOf = (v: { volumeContext?: Record<string, string> }) => path.join(share!.path, v.volumeContext!["csi-lab/subDir"]!);
  const meta = (...parts: string[]) => path.join(share!.path, ".csi-lab", ...parts);
  /** What is on the share: its volumes, their markers, the copies under way. */
  const onShare = async () => ({
    volumes: (await fsp.readdir(share!.path)).sort(),
    markers: (await fsp.readdir(meta("volumes")).catch(() => [])).sort(),
    tmp: await fsp.readdir(meta("tmp")).catch(() => []),
  });
  const noViews = async () => {
    assert.deepEqual(readMountInfo().filter((m) => m.mountPoint.startsWith(d!.root + "/")).map((m) => m.mountPoint), [], "no view stays mounted");
    assert.deepEqual(await fsp.readdir(path.join(d!.root, "snapshots", ".views")), [], "nor its directory");
  };

  it("CreateSnapshot whose flush never returns answers UNAVAILABLE, holds no lock, and a retry once the share is back takes it", async () => {
    const v = await create();
    await fsp.writeFile(path.join(dirOf(v), "f"), "before the share stopped");
    await share!.stall();
    const req = { name: uniqueName("snap"), sourceVolumeId: v.volumeId };
    await expectCode(d!.client.controller.createSnapshot(req, PATIENT), Code.UNAVAILABLE, /^sync made no progress for 1 s on a copy .*share .*hung/);
    await noViews();
    // The call's locks are gone with its answer: a retry runs (and meets the same share), it is not ABORTED.
    await expectCode(d!.client.controller.createSnapshot(req, PATIENT), Code.UNAVAILABLE);
    await share!.resume();
    const key = snapshotKeyOf(req.name);
    await assert.rejects(fsp.stat(meta("snapshots", `${key}.json`)), { code: "ENOENT" }, "nothing was committed");
    const snap = (await d!.client.controller.createSnapshot(req, PATIENT)).snapshot!;
    assert.equal(snap.readyToUse, true);
    assert.equal(await fsp.readFile(meta("snapshots", key, "f"), "utf8"), "before the share stopped");
    assert.deepEqual((await onShare()).tmp, [], "the stopped copies were cleared away");
  });

  it("CreateVolume from a snapshot whose copy cannot read the share answers UNAVAILABLE and makes no volume", async () => {
    const v = await create();
    const bytes = randomBytes(1024 * 1024);
    await fsp.writeFile(path.join(dirOf(v), "f"), bytes);
    const snapshotId = (await d!.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: v.volumeId }, PATIENT)).snapshot!.snapshotId!;
    const content = meta("snapshots", snapshotId.split(":").at(-1)!, "f");
    await share!.evict(content);
    const before = await onShare();
    await share!.stall();
    await fsp.writeFile(path.join(share!.path, "pending"), "a write the disk never takes");
    await share!.stallReads(path.join(share!.path, "pending"));
    const name = uniqueName("restored");
    await expectCode(create({ snapshot: { snapshotId } }, name), Code.UNAVAILABLE, /^cp made no progress for 1 s on a copy within share .*, and was stopped; the share may be hung/);
    await noViews();
    await share!.resume();
    const after = await onShare();
    assert.deepEqual({ ...after, volumes: after.volumes.filter((e) => e !== "pending"), tmp: [] }, { ...before, tmp: [] }, "no volume directory, no marker");
    const restored = await create({ snapshot: { snapshotId } }, name);
    assert.deepEqual(await fsp.readFile(path.join(dirOf(restored), "f")), bytes);
    assert.deepEqual((await onShare()).tmp, []);
  });

  it("a clone whose flush never returns answers UNAVAILABLE and makes no volume; the retry makes it", async () => {
    const v = await create();
    await fsp.writeFile(path.join(dirOf(v), "f"), "cloned");
    const before = await onShare();
    await share!.stall();
    const name = uniqueName("clone");
    await expectCode(create({ volume: { volumeId: v.volumeId! } }, name), Code.UNAVAILABLE, /^sync made no progress for 1 s on a copy .*share .*hung/);
    await noViews();
    await share!.resume();
    assert.deepEqual({ ...(await onShare()), tmp: [] }, { ...before, tmp: [] }, "no volume directory, no marker");
    const clone = await create({ volume: { volumeId: v.volumeId! } }, name);
    assert.equal(await fsp.readFile(path.join(dirOf(clone), "f"), "utf8"), "cloned");
    assert.deepEqual((await onShare()).tmp, []);
  });
});
