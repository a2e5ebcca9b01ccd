// Ephemeral inline volumes: NodePublishVolume makes its own volume and NodeUnpublishVolume removes it.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { blockCapability, Code, destroyDriver, expectCode, isMounted, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("Ephemeral inline volumes", () => {
  let d: DriverProcess;
  // Attach on: inline volumes are never attached, and must work all the same.
  before(async () => (d = await startDriver({ extraArgs: ["--enable-attach"] })));
  after(async () => destroyDriver(d));

  // What the kubelet sends: its own volume ID ("csi-" + a hash) and pod details.
  const kubeletVolumeId = () => `csi-${createHash("sha256").update(uniqueName()).digest("hex")}`;
  const inline = (attrs: Record<string, string> = {}) => ({
    "csi.storage.k8s.io/ephemeral": "true",
    "csi.storage.k8s.io/pod.name": "web-0",
    "csi.storage.k8s.io/pod.namespace": "default",
    ...attrs,
  });
  const storeId = (volumeId: string) => "hp-" + createHash("sha256").update(`ephemeral/${volumeId}`).digest("hex").slice(0, 32);
  const volumeFiles = async () => (await fsp.readdir(path.join(d.root, "volumes"))).filter((f) => f.endsWith(".json"));

  it("NodePublishVolume creates a volume mounted writable at the target; NodeUnpublishVolume removes both", async () => {
    const volumeId = kubeletVolumeId();
    const targetPath = d.path(uniqueName("pod"), "mount");
    await fsp.mkdir(path.dirname(targetPath)); // the kubelet makes the target's parent
    const before = await volumeFiles();
    await d.client.node.nodePublishVolume({ volumeId, targetPath, volumeCapability: mountCapability(), volumeContext: inline({ size: "64Mi", mode: "0770" }) });
    assert.ok(await isMounted(targetPath));
    await fsp.writeFile(path.join(targetPath, "scratch"), "x");
    assert.equal((await fsp.stat(targetPath)).mode & 0o7777, 0o770);
    const meta = JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${storeId(volumeId)}.json`), "utf8"));
    assert.equal(meta.name, `ephemeral/${volumeId}`);
    assert.equal(meta.capacityBytes, 64 * 2 ** 20);
    assert.equal((await volumeFiles()).length, before.length + 1);
    // The kubelet asks for stats under its own volume ID.
    const stats = await d.client.node.nodeGetVolumeStats({ volumeId, volumePath: targetPath });
    assert.ok(stats.usage!.length > 0);

    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
    assert.equal(await isMounted(targetPath), false);
    assert.equal(existsSync(targetPath), false);
    assert.deepEqual(await volumeFiles(), before);
    assert.equal(existsSync(path.join(d.root, "data", storeId(volumeId))), false);
  });

  it("is idempotent: a repeated publish keeps the data, a repeated unpublish answers OK", async () => {
    const volumeId = kubeletVolumeId();
    const req = { volumeId, targetPath: d.path(uniqueName("pod")), volumeCapability: mountCapability(), volumeContext: inline() };
    await d.client.node.nodePublishVolume(req);
    await fsp.writeFile(path.join(req.targetPath, "kept"), "yes");
    await d.client.node.nodePublishVolume(req);
    assert.equal(await fsp.readFile(path.join(req.targetPath, "kept"), "utf8"), "yes");
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: req.targetPath });
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: req.targetPath });
  });

  it("is not listed by ListVolumes: it belongs to its pod, not to the CO", async () => {
    const volumeId = kubeletVolumeId();
    const targetPath = d.path(uniqueName("pod"));
    await d.client.node.nodePublishVolume({ volumeId, targetPath, volumeCapability: mountCapability(), volumeContext: inline() });
    const ids = (await d.client.controller.listVolumes({})).entries!.map((e) => e.volume!.volumeId);
    assert.ok(!ids.includes(storeId(volumeId)));
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
  });

  it("survives kill -9: the mount stays and a later unpublish still removes the volume", async () => {
    const volumeId = kubeletVolumeId();
    const targetPath = d.path(uniqueName("pod"));
    await d.client.node.nodePublishVolume({ volumeId, targetPath, volumeCapability: mountCapability(), volumeContext: inline() });
    d.proc.kill("SIGKILL");
    await d.exit;
    await d.start();
    assert.ok(await isMounted(targetPath));
    await d.client.node.nodePublishVolume({ volumeId, targetPath, volumeCapability: mountCapability(), volumeContext: inline() });
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
    assert.equal(existsSync(path.join(d.root, "volumes", `${storeId(volumeId)}.json`)), false);
  });

  it("is deleted only when its last target goes", async () => {
    const volumeId = kubeletVolumeId();
    const cap = mountCapability(Mode.SINGLE_NODE_MULTI_WRITER);
    const [t1, t2] = [d.path(uniqueName("pod")), d.path(uniqueName("pod"))];
    for (const targetPath of [t1, t2]) await d.client.node.nodePublishVolume({ volumeId, targetPath, volumeCapability: cap, volumeContext: inline() });
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: t1 });
    assert.ok(existsSync(path.join(d.root, "volumes", `${storeId(volumeId)}.json`)));
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: t2 });
    assert.equal(existsSync(path.join(d.root, "volumes", `${storeId(volumeId)}.json`)), false);
  });

  it("with a staging path, an unknown attribute or a bad size or mode answers INVALID_ARGUMENT and creates nothing", async () => {
    const before = await volumeFiles();
    const base = { volumeId: kubeletVolumeId(), targetPath: d.path(uniqueName("pod")), volumeCapability: mountCapability() };
    await expectCode(d.client.node.nodePublishVolume({ ...base, stagingTargetPath: d.path("s"), volumeContext: inline() }), Code.INVALID_ARGUMENT, /staging_target_path/);
    await expectCode(d.client.node.nodePublishVolume({ ...base, volumeContext: inline({ sise: "1Gi" }) }), Code.INVALID_ARGUMENT, /sise/);
    await expectCode(d.client.node.nodePublishVolume({ ...base, volumeContext: inline({ size: "lots" }) }), Code.INVALID_ARGUMENT, /size/);
    await expectCode(d.client.node.nodePublishVolume({ ...base, volumeContext: inline({ mode: "rwx" }) }), Code.INVALID_ARGUMENT, /mode/);
    assert.deepEqual(await volumeFiles(), before);
    assert.equal(await isMounted(base.targetPath), false);
  });

  it("a first publish that fails leaves no volume behind", async () => {
    const before = await volumeFiles();
    const targetPath = d.path(uniqueName("pod"));
    await fsp.symlink("/etc", targetPath);
    await expectCode(
      d.client.node.nodePublishVolume({ volumeId: kubeletVolumeId(), targetPath, volumeCapability: mountCapability(), volumeContext: inline() }),
      Code.FAILED_PRECONDITION,
      /symbolic link/,
    );
    assert.deepEqual(await volumeFiles(), before);
  });

  it("the same volume_id with a different size answers ALREADY_EXISTS", async () => {
    const volumeId = kubeletVolumeId();
    const targetPath = d.path(uniqueName("pod"));
    await d.client.node.nodePublishVolume({ volumeId, targetPath, volumeCapability: mountCapability(), volumeContext: inline({ size: "1Mi" }) });
    await expectCode(
      d.client.node.nodePublishVolume({ volumeId, targetPath, volumeCapability: mountCapability(), volumeContext: inline({ size: "2Mi" }) }),
      Code.ALREADY_EXISTS,
    );
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
  });

  it("block access or a foreign fs_type answers FAILED_PRECONDITION and creates nothing (an inline volume is a directory)", async () => {
    const before = await volumeFiles();
    // A file system image volumes offer, but not the one the root is on.
    const rootFs = execFileSync("findmnt", ["-n", "-o", "FSTYPE", "--target", d.root]).toString().trim();
    const foreign = mountCapability();
    foreign.mount!.fsType = rootFs === "xfs" ? "ext4" : "xfs";
    for (const volumeCapability of [blockCapability(), foreign]) {
      const targetPath = d.path(uniqueName("pod"));
      await expectCode(d.client.node.nodePublishVolume({ volumeId: kubeletVolumeId(), targetPath, volumeCapability, volumeContext: inline() }), Code.FAILED_PRECONDITION);
      assert.equal(await isMounted(targetPath), false);
      assert.equal(existsSync(targetPath), false);
    }
    assert.deepEqual(await volumeFiles(), before);
  });
});
