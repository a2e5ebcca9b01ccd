// A memory volume's place under the root holds its tmpfs — and only its tmpfs is the volume.
//
// Each memory volume is a tmpfs mounted at <root>/memory/data/<id>, marked as the volume's
// (trusted.csi-lab.made-for, src/node/made-here.ts). Someone may unmount it there by hand and
// mount something else in its place: another tmpfs, or a bind of one that is in use elsewhere.
// That other file system is not the volume: DeleteVolume does not unmount it, NodeStageVolume
// does not hand it to a pod, and a bind of it somewhere in the kubelet directory is not taken
// for the volume's mount — while the volume's own mounts, still at its staging and target
// paths, are still known by their mark.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "../../src/mount/mountinfo";
import { mountFs, unmount } from "../../src/mount/syscalls";
import { MEMORY } from "./backends";
import { Code, destroyDriver, expectCode, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

const MiB = 1024 * 1024;
const cap = mountCapability(Mode.SINGLE_NODE_MULTI_WRITER);

describe("Memory volumes: another file system mounted in a volume's place is not the volume", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  const mountedAt = (p: string) => readMountInfo().filter((m) => m.mountPoint === p);

  async function create(): Promise<{ volumeId: string; data: string }> {
    const v = await d.client.controller.createVolume({ name: uniqueName("mem"), volumeCapabilities: [cap], capacityRange: { requiredBytes: 4 * MiB, limitBytes: 0 }, parameters: MEMORY.parameters(d) });
    const volumeId = v.volume!.volumeId!;
    return { volumeId, data: MEMORY.contentDir(d, volumeId) };
  }

  /** A tmpfs of someone else's at `p`, holding a file of theirs. */
  async function theirTmpfs(p: string): Promise<void> {
    await fsp.mkdir(p, { recursive: true });
    mountFs("someone-else", p, "tmpfs", 0, `size=${MiB}`);
    await fsp.writeFile(path.join(p, "theirs"), "keep");
  }

  it("DeleteVolume leaves alone a tmpfs mounted in the volume's place after its own was unmounted by hand: FAILED_PRECONDITION, nothing deleted", async () => {
    const { volumeId, data } = await create();
    unmount(data, { detach: true }); // an administrator's umount
    await theirTmpfs(data);

    await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.FAILED_PRECONDITION, /someone-else/);
    assert.equal(mountedAt(data).length, 1, "their tmpfs is still mounted there");
    assert.equal(await fsp.readFile(path.join(data, "theirs"), "utf8"), "keep");
    assert.ok((await d.client.controller.controllerGetVolume({ volumeId })).volume, "the volume is still there");

    // Once the place is the driver's again, the delete goes through.
    unmount(data, { detach: true });
    await d.client.controller.deleteVolume({ volumeId });
    await expectCode(d.client.controller.controllerGetVolume({ volumeId }), Code.NOT_FOUND);
  });

  it("NodeStageVolume does not bind what someone else mounted in the volume's place, and the start-up sweep does not mount over it", async () => {
    const { volumeId, data } = await create();
    unmount(data, { detach: true });
    await theirTmpfs(data);

    const staging = d.path(uniqueName("stage"));
    await expectCode(d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: cap }), Code.FAILED_PRECONDITION, /tmpfs is not mounted/);
    assert.equal(mountedAt(staging).length, 0, "nothing was bound at the staging path");

    await d.restart();
    assert.equal(mountedAt(data).length, 1, "no tmpfs was stacked over theirs");
    assert.deepEqual(await fsp.readdir(data), ["theirs"]);

    unmount(data, { detach: true });
    await d.client.controller.deleteVolume({ volumeId });
  });

  it("NodeUnpublishVolume unmounts the volume's own mount, known by its mark, and not a bind of the tmpfs put in its place", async () => {
    const { volumeId, data } = await create();
    const staging = d.path(uniqueName("stage"));
    const target = d.path(uniqueName("pod"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: cap });

    // Someone unmounts the volume's home and binds there a tmpfs that is in use in the kubelet
    // directory (a pod's emptyDir with medium: Memory).
    const emptyDir = d.path(uniqueName("pods"), "volumes", "kubernetes.io~empty-dir", "cache");
    await theirTmpfs(emptyDir);
    unmount(data, { detach: true });
    execFileSync("mount", ["--bind", emptyDir, data]);

    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: emptyDir }), Code.FAILED_PRECONDITION, /someone-else/);
    assert.equal(mountedAt(emptyDir).length, 1, "the emptyDir is still mounted");
    assert.equal(await fsp.readFile(path.join(emptyDir, "theirs"), "utf8"), "keep");

    // The volume's own mounts go as they should.
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target });
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    assert.equal(mountedAt(target).length + mountedAt(staging).length, 0);

    unmount(data, { detach: true });
    unmount(emptyDir, { detach: true });
    await d.client.controller.deleteVolume({ volumeId });
  });
});
