// VOLUME_MOUNT_GROUP: a pod's fsGroup becomes the volume root's group, with setgid, so a non-root pod can write.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { NodeServiceCapability_RPC_Type as NodeCap } from "../../src/gen/csi";
import { Code, destroyDriver, expectCode, Mode, startDriver, uniqueName, type DriverProcess } from "./harness";

const run = promisify(execFile);
// A pod's user: not root, primary group = the pod's fsGroup, no other groups.
const POD_UID = 4242;
const FS_GROUP = 5555;

/** Run `script` with node as uid/gid; resolves to its stdout, rejects on a non-zero exit. */
async function asUser(uid: number, gid: number, script: string, ...args: string[]): Promise<string> {
  return (await run(process.execPath, ["-e", script, ...args], { uid, gid })).stdout;
}
const WRITE = "require('fs').writeFileSync(process.argv[1], 'from the pod')";

describe("VOLUME_MOUNT_GROUP (fsGroup)", () => {
  let d: DriverProcess;
  before(async () => {
    d = await startDriver();
    await fsp.chmod(d.dir, 0o711); // the pod's user must be able to walk to the target
  });
  after(async () => destroyDriver(d));

  const cap = (volumeMountGroup = "", mode = Mode.SINGLE_NODE_MULTI_WRITER) => ({ mount: { fsType: "", mountFlags: [], volumeMountGroup }, accessMode: { mode } });

  /** A volume whose root is 0770 root:root, so only its group can write. */
  async function closedVolume() {
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap()], mutableParameters: { mode: "0770" } })).volume!.volumeId!;
    const parent = d.path(uniqueName("pod"));
    await fsp.mkdir(parent, { mode: 0o755 });
    return { volumeId, stagingTargetPath: d.path(uniqueName("stage")), targetPath: path.join(parent, "mount") };
  }

  it("is advertised by NodeGetCapabilities", async () => {
    const caps = (await d.client.node.nodeGetCapabilities({})).capabilities!.map((c) => c.rpc!.type);
    assert.ok(caps.includes(NodeCap.VOLUME_MOUNT_GROUP));
  });

  it("a non-root pod in the fsGroup can write, and what it creates belongs to the group", async () => {
    const v = await closedVolume();
    // Without the group, the pod's user is refused: the test can fail.
    await d.client.node.nodeStageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath, volumeCapability: cap() });
    await d.client.node.nodePublishVolume({ ...v, volumeCapability: cap() });
    await assert.rejects(asUser(POD_UID, FS_GROUP, WRITE, path.join(v.targetPath, "denied")));
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath });

    await d.client.node.nodeStageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath, volumeCapability: cap(String(FS_GROUP)) });
    await d.client.node.nodePublishVolume({ ...v, volumeCapability: cap(String(FS_GROUP)) });
    const root = await fsp.stat(v.targetPath);
    assert.equal(root.gid, FS_GROUP);
    assert.equal(root.mode & 0o7777, 0o2770, "group rwx and set-group-ID");

    await asUser(POD_UID, FS_GROUP, WRITE, path.join(v.targetPath, "hello"));
    assert.equal((await fsp.stat(path.join(v.targetPath, "hello"))).gid, FS_GROUP);
    await asUser(POD_UID, FS_GROUP, "require('fs').mkdirSync(process.argv[1])", path.join(v.targetPath, "sub"));
    const sub = await fsp.stat(path.join(v.targetPath, "sub"));
    assert.equal(sub.gid, FS_GROUP);
    assert.ok(sub.mode & 0o2000, "new directories inherit set-group-ID");
    // A process of another primary group (here root's own) still creates files of the fsGroup: that is setgid at work.
    await fsp.writeFile(path.join(v.targetPath, "by-root"), "x");
    assert.equal((await fsp.stat(path.join(v.targetPath, "by-root"))).gid, FS_GROUP);

    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath });
  });

  it("NodePublishVolume alone applies it too, but a read-only publish leaves the root alone", async () => {
    const v = await closedVolume();
    await d.client.node.nodeStageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath, volumeCapability: cap() });
    const ro = path.join(path.dirname(v.targetPath), "ro");
    await d.client.node.nodePublishVolume({ ...v, targetPath: ro, volumeCapability: cap(String(FS_GROUP)), readonly: true });
    assert.equal((await fsp.stat(ro)).gid, 0);
    await d.client.node.nodePublishVolume({ ...v, volumeCapability: cap(String(FS_GROUP)) });
    assert.equal((await fsp.stat(v.targetPath)).gid, FS_GROUP);
    await asUser(POD_UID, FS_GROUP, WRITE, path.join(v.targetPath, "hello"));
    for (const targetPath of [ro, v.targetPath]) await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath });
  });

  it("a volume_mount_group that is not a numeric group id answers INVALID_ARGUMENT", async () => {
    const v = await closedVolume();
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath, volumeCapability: cap("wheel") }),
      Code.INVALID_ARGUMENT,
      /volume_mount_group/,
    );
  });

  it("4294967295, which the kernel reads as \"no group\", and past it answer INVALID_ARGUMENT saying the range", async () => {
    const v = await closedVolume();
    for (const group of ["4294967295", "4294967296", "-1"]) {
      await expectCode(
        d.client.node.nodeStageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath, volumeCapability: cap(group) }),
        Code.INVALID_ARGUMENT,
        /volume_mount_group must be a numeric group id from 0 to 4294967294/,
      );
    }
  });
});
