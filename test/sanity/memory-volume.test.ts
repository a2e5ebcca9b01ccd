// backend: memory — a tmpfs per volume, its size enforced by the kernel; contents kept across the
// driver's restart, not the node's (docs/memory.md).
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "../../src/mount/mountinfo";
import { mountFs, unmount } from "../../src/mount/syscalls";
import { MEMORY } from "./backends";
import { blockCapability, Code, destroyDriver, expectCode, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

const MiB = 1024 * 1024;

describe("Memory volumes", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  async function published(size: number, extra: Record<string, string> = {}, mutable: Record<string, string> = {}) {
    const v = (
      await d.client.controller.createVolume({
        name: uniqueName("mem"),
        volumeCapabilities: [mountCapability(Mode.SINGLE_NODE_MULTI_WRITER)],
        capacityRange: { requiredBytes: size, limitBytes: 0 },
        parameters: MEMORY.parameters(d, extra),
        mutableParameters: mutable,
      })
    ).volume!;
    const staging = d.path(uniqueName("stage"));
    const target = d.path(uniqueName("pod"));
    const cap = mountCapability(Mode.SINGLE_NODE_MULTI_WRITER);
    await d.client.node.nodeStageVolume({ volumeId: v.volumeId, stagingTargetPath: staging, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId: v.volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: cap });
    const done = async () => {
      await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
      await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: staging });
      await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    };
    return { volumeId: v.volumeId!, staging, target, done, volume: v };
  }

  /** Write `bytes` to a new file in `dir`; the errno it failed with, or undefined. */
  async function fill(dir: string, bytes: number): Promise<string | undefined> {
    try {
      await fsp.writeFile(path.join(dir, uniqueName("f")), Buffer.alloc(bytes, 7));
      return undefined;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code;
    }
  }

  it("is a tmpfs of the requested size, nodev and nosuid, topology of this node, and its ID says memory", async () => {
    const v = await published(8 * MiB);
    assert.match(v.volumeId, /^mem-[0-9a-f]{32}$/);
    const m = readMountInfo().find((e) => e.mountPoint === v.target)!;
    assert.equal(m.fsType, "tmpfs");
    const s = await fsp.statfs(v.target);
    assert.equal(s.blocks * s.bsize, 8 * MiB);
    const backing = readMountInfo().find((e) => e.mountPoint === path.join(d.root, "memory", "data", v.volumeId))!;
    assert.ok(backing.options.includes("nodev") && backing.options.includes("nosuid"), backing.options.join(","));
    assert.deepEqual(v.volume.accessibleTopology, [{ segments: { "csi-lab.example.org/node": d.nodeId } }]);
    assert.equal(v.volume.volumeContext!["csi-lab/backend"], "memory");
    await v.done();
  });

  it("a write past its size fails inside the volume with ENOSPC; after expansion it succeeds", async () => {
    const v = await published(4 * MiB);
    assert.equal(await fill(v.target, 3 * MiB), undefined);
    assert.equal(await fill(v.target, 2 * MiB), "ENOSPC");
    const grown = await d.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 8 * MiB, limitBytes: 0 } });
    assert.equal(grown.capacityBytes, 8 * MiB);
    await d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.target, capacityRange: { requiredBytes: 8 * MiB, limitBytes: 0 } });
    assert.equal(await fill(v.target, 2 * MiB), undefined);
    const s = await fsp.statfs(v.target);
    assert.equal(s.blocks * s.bsize, 8 * MiB);
    await v.done();
  });

  it("NodeGetVolumeStats reports the tmpfs's own usage", async () => {
    const v = await published(16 * MiB);
    await fill(v.target, 2 * MiB);
    const { usage } = await d.client.node.nodeGetVolumeStats({ volumeId: v.volumeId, volumePath: v.target });
    const bytes = usage!.find((u) => u.unit === 1)!;
    assert.equal(bytes.total, 16 * MiB);
    assert.ok(bytes.used! >= 2 * MiB && bytes.used! < 3 * MiB, `used ${bytes.used}`);
    await v.done();
  });

  it("takes mode and a pod's fsGroup on its root", async () => {
    const v = await published(4 * MiB, {}, { mode: "0750" });
    assert.equal((await fsp.stat(v.target)).mode & 0o7777, 0o750);
    await d.client.controller.controllerModifyVolume({ volumeId: v.volumeId, mutableParameters: { mode: "2770" } });
    assert.equal((await fsp.stat(v.target)).mode & 0o7777, 0o2770);
    await v.done();
  });

  it("NodePublishVolume gives the root to the pod's fsGroup, as staging does, and a retry finishes it", async () => {
    const v = await published(4 * MiB);
    const cap = (group: string) => ({ mount: { fsType: "", mountFlags: [], volumeMountGroup: group }, accessMode: { mode: Mode.SINGLE_NODE_MULTI_WRITER } });
    const target = d.path(uniqueName("pod"));
    const req = { volumeId: v.volumeId, stagingTargetPath: v.staging, targetPath: target, volumeCapability: cap("5555") };
    await d.client.node.nodePublishVolume(req);
    let root = await fsp.stat(target);
    assert.equal(root.gid, 5555);
    assert.equal(root.mode & 0o2070, 0o2070, "group rwx and set-group-ID");
    // Undone behind the driver's back (as a crash between bind and chown would leave it): the retry applies it.
    await fsp.chown(target, 0, 0);
    await d.client.node.nodePublishVolume(req);
    root = await fsp.stat(target);
    assert.equal(root.gid, 5555);
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
    await v.done();
  });

  it("keeps its contents across the driver's restart", async () => {
    const v = await published(4 * MiB);
    await fsp.writeFile(path.join(v.target, "note"), "still here");
    await d.restart();
    assert.equal(await fsp.readFile(path.join(v.target, "note"), "utf8"), "still here");
    const again = d.path(uniqueName("pod"));
    await d.client.node.nodePublishVolume({ volumeId: v.volumeId, stagingTargetPath: v.staging, targetPath: again, volumeCapability: mountCapability(Mode.SINGLE_NODE_MULTI_WRITER) });
    assert.equal(await fsp.readFile(path.join(again, "note"), "utf8"), "still here");
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: again });
    await v.done();
  });

  it("after the node's restart (its tmpfs gone), the driver mounts it again, empty, and says so", async () => {
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName("mem"), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 4 * MiB, limitBytes: 0 }, parameters: MEMORY.parameters(d) })).volume!.volumeId!;
    const data = path.join(d.root, "memory", "data", volumeId);
    await fsp.writeFile(path.join(data, "lost"), "only in memory");
    await d.stop();
    unmount(data, { detach: true }); // what a reboot does to it
    await d.start();
    assert.ok(d.jsonLogs().some((l) => l.msg === "a memory volume lost its contents (the node restarted since it was made); it is empty now" && l.volumeId === volumeId));
    assert.deepEqual(await fsp.readdir(data), []);
    const { status } = await d.client.controller.controllerGetVolume({ volumeId });
    assert.equal(status!.volumeCondition!.abnormal, false);
    await d.client.controller.deleteVolume({ volumeId });
  });

  it("a clone is marked as its own, not its source's: its mounts are still known once its tmpfs's home is unmounted", async () => {
    const source = await published(4 * MiB);
    const cap = mountCapability(Mode.SINGLE_NODE_MULTI_WRITER);
    const clone = (
      await d.client.controller.createVolume({ name: uniqueName("mem"), volumeCapabilities: [cap], parameters: MEMORY.parameters(d), volumeContentSource: { volume: { volumeId: source.volumeId } } })
    ).volume!.volumeId!;
    const [staging, target] = [d.path(uniqueName("stage")), d.path(uniqueName("pod"))];
    await d.client.node.nodeStageVolume({ volumeId: clone, stagingTargetPath: staging, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId: clone, stagingTargetPath: staging, targetPath: target, volumeCapability: cap });
    unmount(path.join(d.root, "memory", "data", clone), { detach: true }); // someone's umount; the pod's mounts stay
    await d.client.node.nodeUnpublishVolume({ volumeId: clone, targetPath: target });
    await d.client.node.nodeUnstageVolume({ volumeId: clone, stagingTargetPath: staging });
    assert.equal(readMountInfo().some((m) => m.mountPoint === target || m.mountPoint === staging), false);
    await d.client.controller.deleteVolume({ volumeId: clone });
    await source.done();
  });

  it("asks for RAM it can promise: a size beyond the node's memory is RESOURCE_EXHAUSTED; block access is refused", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName("huge"), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 2 ** 50, limitBytes: 0 }, parameters: MEMORY.parameters(d) }),
      Code.RESOURCE_EXHAUSTED,
      /RAM/,
    );
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName("blk"), volumeCapabilities: [{ block: {}, accessMode: { mode: 1 } }], parameters: MEMORY.parameters(d) }),
      Code.INVALID_ARGUMENT,
    );
    const cap = await d.client.controller.getCapacity({ parameters: MEMORY.parameters(d), volumeCapabilities: [mountCapability()] });
    assert.ok(cap.availableCapacity! > 0);
  });

  it("NodeStageVolume and NodePublishVolume with a capability a memory volume cannot serve: FAILED_PRECONDITION naming the volume and what was asked", async () => {
    const volumeId = await create4MiB();
    const staging = d.path(uniqueName("stage"));
    const target = d.path(uniqueName("pod"));
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability(Mode.MULTI_NODE_MULTI_WRITER) }),
      Code.FAILED_PRECONDITION,
      new RegExp(`^volume ${volumeId}: access mode MULTI_NODE_MULTI_WRITER is not supported`),
    );
    await expectCode(
      d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: blockCapability() }),
      Code.FAILED_PRECONDITION,
      new RegExp(`^volume ${volumeId}: access type block is not supported`),
    );
    await d.client.controller.deleteVolume({ volumeId });
  });

  /** What GetCapacity says this node can still promise to memory volumes. */
  async function promisable(): Promise<number> {
    return (await d.client.controller.getCapacity({ parameters: MEMORY.parameters(d), volumeCapabilities: [mountCapability()] })).availableCapacity!;
  }

  /** Most of what can be promised, in whole pages: two such sizes never fit together. */
  async function mostOfPromisable(): Promise<number> {
    return Math.floor((await promisable()) * 0.6 / 4096) * 4096;
  }

  it("two CreateVolumes or ControllerExpandVolumes at once cannot together take more RAM than the node can promise", async () => {
    // Empty tmpfs mounts: their size costs no RAM until written.
    const size = await mostOfPromisable();
    const create = () => d.client.controller.createVolume({ name: uniqueName("mem"), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: size, limitBytes: 0 }, parameters: MEMORY.parameters(d) });
    const made = await Promise.allSettled([create(), create()]);
    const ids = made.flatMap((r) => (r.status === "fulfilled" ? [r.value.volume!.volumeId!] : []));
    for (const id of ids) await d.client.controller.deleteVolume({ volumeId: id });
    assert.equal(ids.length, 1, `both creates of ${size} bytes succeeded: ${JSON.stringify(made.map((r) => r.status))}`);
    assert.match(String((made.find((r) => r.status === "rejected") as PromiseRejectedResult).reason), /RESOURCE_EXHAUSTED/);

    const small = await Promise.all([create4MiB(), create4MiB()]);
    const grow = (volumeId: string) => d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: size, limitBytes: 0 } });
    const grown = await Promise.allSettled(small.map(grow));
    for (const id of small) await d.client.controller.deleteVolume({ volumeId: id });
    assert.equal(grown.filter((r) => r.status === "fulfilled").length, 1, `both expansions to ${size} bytes succeeded: ${JSON.stringify(grown.map((r) => r.status))}`);
  });

  it("NodeExpandVolume past what the node can promise is RESOURCE_EXHAUSTED and leaves the volume as it was", async () => {
    const volumeId = await create4MiB();
    const staging = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability() });
    const before = await promisable();
    // As a controller apart from the nodes answers the resizer: from the request, with the node to grow it.
    await expectCode(d.client.node.nodeExpandVolume({ volumeId, volumePath: staging, capacityRange: { requiredBytes: 2 ** 50, limitBytes: 0 } }), Code.RESOURCE_EXHAUSTED, /RAM/);
    const s = await fsp.statfs(staging);
    assert.equal(s.blocks * s.bsize, 4 * MiB);
    assert.ok((await promisable()) > before / 2, "the RAM it was refused is still promisable");
    // What fits is granted.
    assert.equal((await d.client.node.nodeExpandVolume({ volumeId, volumePath: staging, capacityRange: { requiredBytes: 8 * MiB, limitBytes: 0 } })).capacityBytes, 8 * MiB);
    const grown = await fsp.statfs(staging);
    assert.equal(grown.blocks * grown.bsize, 8 * MiB);
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    await d.client.controller.deleteVolume({ volumeId });
  });

  it("a volume whose tmpfs is gone is not grown: FAILED_PRECONDITION, saying so, and its record keeps its size", async () => {
    for (const gone of ["unmounted", "unmounted and its directory removed"]) {
      const volumeId = await create4MiB();
      const data = path.join(d.root, "memory", "data", volumeId);
      unmount(data, { detach: true });
      if (gone !== "unmounted") await fsp.rmdir(data);
      await expectCode(d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 8 * MiB, limitBytes: 0 } }), Code.FAILED_PRECONDITION, /cannot be expanded: its tmpfs is missing/);
      const { volume } = await d.client.controller.controllerGetVolume({ volumeId });
      assert.equal(volume!.capacityBytes, 4 * MiB, gone);
      await d.client.controller.deleteVolume({ volumeId });
    }
  });

  it("a symlink put in place of a volume's tmpfs is never followed: not grown, staged, nor mounted over at start-up", async () => {
    // Another tmpfs (as /dev/shm or /run would be) and a plain directory, each with something in it.
    const otherTmpfs = d.scratch(uniqueName("other-tmpfs"));
    await fsp.mkdir(otherTmpfs);
    mountFs("tmpfs", otherTmpfs, "tmpfs", 0, `size=${MiB}`);
    await fsp.writeFile(path.join(otherTmpfs, "theirs"), "not the volume's");
    const otherDir = d.scratch(uniqueName("other-dir"));
    await fsp.mkdir(otherDir);
    await fsp.writeFile(path.join(otherDir, "theirs"), "not the volume's");
    const replaced = async (target: string) => {
      const volumeId = await create4MiB();
      const data = path.join(d.root, "memory", "data", volumeId);
      unmount(data, { detach: true });
      await fsp.rmdir(data);
      await fsp.symlink(target, data);
      return { volumeId, data };
    };
    const a = await replaced(otherTmpfs);
    const b = await replaced(otherDir);

    const { status } = await d.client.controller.controllerGetVolume({ volumeId: a.volumeId });
    assert.deepEqual(status!.volumeCondition, { abnormal: true, message: "the volume's mount point has been replaced by a symlink" });
    await expectCode(d.client.controller.controllerExpandVolume({ volumeId: a.volumeId, capacityRange: { requiredBytes: 8 * MiB, limitBytes: 0 } }), Code.FAILED_PRECONDITION);
    const s = await fsp.statfs(otherTmpfs);
    assert.equal(s.blocks * s.bsize, MiB, "the other tmpfs keeps its size");
    await expectCode(d.client.node.nodeStageVolume({ volumeId: a.volumeId, stagingTargetPath: d.path(uniqueName("stage")), volumeCapability: mountCapability() }), Code.FAILED_PRECONDITION);

    // At start-up a volume without its tmpfs gets an empty one, but not through a symlink; the driver starts.
    await d.restart();
    assert.equal(readMountInfo().some((m) => m.mountPoint === otherDir), false, "nothing is mounted over the directory the symlink names");
    assert.deepEqual(await fsp.readdir(otherDir), ["theirs"]);
    assert.deepEqual(await fsp.readdir(otherTmpfs), ["theirs"]);

    for (const v of [a, b]) {
      await fsp.unlink(v.data);
      await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    }
    unmount(otherTmpfs, { detach: true });
  });

  it("a symlink named as a volume, with no record, is left alone at start-up and does not keep the driver from starting", async () => {
    const elsewhere = d.scratch(uniqueName("elsewhere"));
    await fsp.mkdir(elsewhere);
    await fsp.writeFile(path.join(elsewhere, "theirs"), "not the driver's");
    const stray = path.join(d.root, "memory", "data", `mem-${"ab".repeat(16)}`);
    await fsp.symlink(elsewhere, stray);
    await d.restart();
    assert.ok(d.jsonLogs().some((l) => l.msg === "what an interrupted create left of a memory volume cannot be removed; it is left as it is" && l.volumeId === `mem-${"ab".repeat(16)}`));
    assert.deepEqual(await fsp.readdir(elsewhere), ["theirs"]);
    assert.equal((await fsp.lstat(stray)).isSymbolicLink(), true);
    await fsp.unlink(stray);
  });

  async function create4MiB(): Promise<string> {
    const v = await d.client.controller.createVolume({ name: uniqueName("mem"), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 4 * MiB, limitBytes: 0 }, parameters: MEMORY.parameters(d) });
    return v.volume!.volumeId!;
  }
});
