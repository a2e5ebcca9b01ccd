// The node touches only what it made for the volume the request names, and only inside the
// kubelet directory (docs/security.md). Each case plants something that is not the driver's
// where a request points, and checks it is still there, as it was, after the call.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { bindMount, mountFs, unmount } from "../../src/mount/syscalls";
import { blockCapability, Code, destroyDriver, DIR_VOLUMES, expectCode, isMounted, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { SECCOMP_VARIANTS, startFor } from "./seccomp-variants";
import { BACKENDS } from "./backends";

// Each suite runs twice: as on a current runtime, and under an old seccomp profile that refuses
// statx and openat2 (seccomp-variants.ts).
for (const variant of SECCOMP_VARIANTS) {
describe(`Node calls touch only what the volume owns${variant.title}`, function () {
  let d: DriverProcess;
  let volumeId: string;
  before(async function () {
    if (variant.skip) this.skip();
    d = await startFor(variant, { extraArgs: DIR_VOLUMES });
    volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
  });
  after(async () => destroyDriver(d));

  /** A tmpfs of "another program" at a fresh place inside the kubelet directory. */
  async function foreignMount(): Promise<string> {
    const p = d.path(uniqueName("foreign"));
    await fsp.mkdir(p);
    mountFs("someone-else", p, "tmpfs", 0, "size=1m");
    await fsp.writeFile(path.join(p, "theirs"), "not the driver's");
    return p;
  }

  it("NodeUnpublishVolume on another program's mount answers FAILED_PRECONDITION naming it, and leaves it mounted", async () => {
    const p = await foreignMount();
    try {
      await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: p }), Code.FAILED_PRECONDITION, /tmpfs from someone-else .*not volume .*left alone/);
      assert.ok(await isMounted(p));
      assert.equal(await fsp.readFile(path.join(p, "theirs"), "utf8"), "not the driver's");
    } finally {
      unmount(p, { detach: true });
    }
  });

  it("NodeUnstageVolume with an unknown volume ID answers NOT_FOUND and unmounts nothing", async () => {
    const p = await foreignMount();
    try {
      await expectCode(d.client.node.nodeUnstageVolume({ volumeId: "hp-00000000000000000000000000000000", stagingTargetPath: p }), Code.NOT_FOUND, /does not exist on this node/);
      assert.ok(await isMounted(p));
    } finally {
      unmount(p, { detach: true });
    }
  });

  it("NodeUnpublishVolume of an unknown volume: NOT_FOUND when something is there, OK when nothing is", async () => {
    const p = d.path(uniqueName("dir"));
    await fsp.mkdir(p);
    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId: "no-such-volume", targetPath: p }), Code.NOT_FOUND, /left as it is/);
    assert.ok(existsSync(p));
    await d.client.node.nodeUnpublishVolume({ volumeId: "no-such-volume", targetPath: d.path(uniqueName("never-made")) });
  });

  it("a target that is a file with data or a directory with entries is left alone: FAILED_PRECONDITION", async () => {
    const file = d.path(uniqueName("file"));
    await fsp.writeFile(file, "data");
    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: file }), Code.FAILED_PRECONDITION, /a file of 4 bytes, which the driver did not make/);
    assert.equal(await fsp.readFile(file, "utf8"), "data");
    const dir = d.path(uniqueName("full"));
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, "keep"), "x");
    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: dir }), Code.FAILED_PRECONDITION, /a directory holding "keep"/);
    assert.ok(existsSync(path.join(dir, "keep")));
  });

  it("an empty directory the driver did not make stays where it is (it is the CO's), and the call succeeds", async () => {
    const dir = d.path(uniqueName("cos"));
    await fsp.mkdir(dir);
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: dir });
    assert.ok(existsSync(dir));
    // What NodePublishVolume made itself is marked, and goes.
    const staging = d.path(uniqueName("stage"));
    const target = d.path(uniqueName("pod"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCapability() });
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target });
    assert.equal(existsSync(target), false);
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
  });

  it("an empty file is not a directory volume's to remove (only a block volume's device file is)", async () => {
    const file = d.path(uniqueName("empty"));
    await fsp.writeFile(file, "");
    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: file }), Code.FAILED_PRECONDITION, /an empty file/);
    assert.ok(existsSync(file));
  });

  it("NodeStageVolume and NodePublishVolume refuse a directory that holds data, and hide nothing", async () => {
    const staging = d.path(uniqueName("stage"));
    await fsp.mkdir(staging);
    await fsp.writeFile(path.join(staging, "precious"), "x");
    await expectCode(d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability() }), Code.FAILED_PRECONDITION, /refusing to mount over/);
    assert.equal(await isMounted(staging), false);
    const realStaging = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: realStaging, volumeCapability: mountCapability() });
    const target = d.path(uniqueName("pod"));
    await fsp.mkdir(target);
    await fsp.writeFile(path.join(target, "precious"), "x");
    await expectCode(
      d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: realStaging, targetPath: target, volumeCapability: mountCapability() }),
      Code.FAILED_PRECONDITION,
      /refusing to mount over/,
    );
    assert.equal(await isMounted(target), false);
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: realStaging });
  });

  it("paths outside the kubelet directory, or leading out of it through a symlink, are INVALID_ARGUMENT", async () => {
    const outside = d.scratch(uniqueName("outside"));
    await fsp.mkdir(outside);
    const link = d.path(uniqueName("link"));
    await fsp.symlink("/", link);
    for (const p of ["/", "/proc", "/etc/passwd", outside, path.join(link, "proc"), `${d.kubeletDir}/../root`, "relative/path", d.kubeletDir, d.root]) {
      await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: p }), Code.INVALID_ARGUMENT, /target_path/);
      await expectCode(d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: p, volumeCapability: mountCapability() }), Code.INVALID_ARGUMENT, /staging_target_path/);
    }
    assert.ok(existsSync(outside));
    assert.ok(existsSync("/proc/self"));
  });

  it("a symlink as the target is never followed", async () => {
    const staging = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability() });
    const elsewhere = d.path(uniqueName("elsewhere"));
    await fsp.mkdir(elsewhere);
    const link = d.path(uniqueName("link"));
    await fsp.symlink(elsewhere, link);
    await expectCode(
      d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: link, volumeCapability: mountCapability() }),
      Code.FAILED_PRECONDITION,
      /symbolic link/,
    );
    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: link }), Code.FAILED_PRECONDITION, /symbolic link/);
    assert.equal(await isMounted(elsewhere), false);
    assert.ok(existsSync(link));
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
  });

  it("a published volume is still unpublished, its directory removed, and a foreign mount under it is not", async () => {
    const staging = d.path(uniqueName("stage"));
    const target = d.path(uniqueName("pod"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCapability() });
    mountFs("stacked", target, "tmpfs", 0, "size=1m"); // someone stacked a mount on top of the pod's volume
    try {
      await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target }), Code.FAILED_PRECONDITION, /tmpfs from stacked/);
    } finally {
      unmount(target, { detach: true });
    }
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target });
    assert.equal(existsSync(target), false);
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    assert.ok(existsSync(staging), "the staging directory is the CO's and stays");
  });

  it("the volume's own mounts stacked at a target all go; one above a foreign mount goes, and the foreign one stays", async () => {
    const staging = d.path(uniqueName("stage"));
    const target = d.path(uniqueName("pod"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCapability() });
    bindMount(staging, target); // the volume twice at the target
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target });
    assert.equal(await isMounted(target), false);
    assert.equal(existsSync(target), false);

    const other = d.path(uniqueName("pod"));
    await fsp.mkdir(other);
    mountFs("underneath", other, "tmpfs", 0, "size=1m");
    bindMount(staging, other); // the volume on top of someone else's tmpfs
    try {
      await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: other }), Code.FAILED_PRECONDITION, /tmpfs from underneath .*own mount above it was unmounted/);
      assert.ok(await isMounted(other), "the tmpfs underneath stays");
    } finally {
      unmount(other, { detach: true });
    }
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
  });

  it("a bind of another volume, of the directory holding the volumes, or of a directory inside the volume is not the volume's: left mounted", async () => {
    // Each has the device of the volume's own directory; only the inode tells them apart (src/mount/mount-root.ts).
    const other = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
    const data = path.join(d.root, "data", volumeId);
    assert.ok(existsSync(data), `the volume's directory is ${data}`);
    const inside = path.join(data, uniqueName("sub"));
    await fsp.mkdir(inside);
    try {
      for (const source of [path.join(d.root, "data", other), path.join(d.root, "data"), inside]) {
        const p = d.path(uniqueName("pod"));
        await fsp.mkdir(p);
        bindMount(source, p);
        try {
          await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: p }), Code.FAILED_PRECONDITION, /not volume .*left alone/);
          await expectCode(d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: p }), Code.FAILED_PRECONDITION, /not volume .*left alone/);
          assert.ok(await isMounted(p), `the bind of ${source} is still mounted`);
          assert.ok(existsSync(source));
        } finally {
          unmount(p, { detach: true });
        }
      }
    } finally {
      await fsp.rmdir(inside);
      await d.client.controller.deleteVolume({ volumeId: other });
    }
  });
});

describe(`Image volumes: another image's file system is not the volume's${variant.title}`, function () {
  let d: DriverProcess;
  before(function () {
    if (variant.skip) this.skip();
  });
  after(async () => destroyDriver(d));

  it("NodeUnpublishVolume and NodeUnstageVolume of one image volume leave another's mounts alone", async () => {
    d = await startFor(variant);
    const create = async () =>
      (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: { capacity: "image" }, capacityRange: { requiredBytes: 16 * 2 ** 20, limitBytes: 0 } })).volume!.volumeId!;
    const mine = await create();
    const theirs = await create();
    const staging = d.path(uniqueName("stage"));
    const target = d.path(uniqueName("pod"));
    await d.client.node.nodeStageVolume({ volumeId: theirs, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await d.client.node.nodePublishVolume({ volumeId: theirs, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCapability() });
    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId: mine, targetPath: target }), Code.FAILED_PRECONDITION, /not volume .*left alone/);
    await expectCode(d.client.node.nodeUnstageVolume({ volumeId: mine, stagingTargetPath: staging }), Code.FAILED_PRECONDITION, /not volume .*left alone/);
    assert.ok(await isMounted(target));
    assert.ok(await isMounted(staging));
    await d.client.node.nodeUnpublishVolume({ volumeId: theirs, targetPath: target });
    await d.client.node.nodeUnstageVolume({ volumeId: theirs, stagingTargetPath: staging });
    assert.equal(await isMounted(staging), false);
  });
});
}

describe("Backends the mount table decides for", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  // A memory volume's mounts are not recognised by statx (src/mount/mount-root.ts):
  // the table names each, and each of the volume's goes, one after the other.
  it("a memory volume's own mounts stacked at a target all go", async () => {
    const memory = BACKENDS.find((b) => b.name === "memory")!;
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: memory.parameters(d) })).volume!.volumeId!;
    const staging = d.path(uniqueName("stage"));
    const target = d.path(uniqueName("pod"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: mountCapability() });
    bindMount(staging, target); // the volume twice at the target
    bindMount(staging, target); // and three times
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target });
    assert.equal(await isMounted(target), false, "every one of the volume's mounts at the target is gone");
    assert.equal(existsSync(target), false);
    bindMount(staging, staging); // and twice at the staging path
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    assert.equal(await isMounted(staging), false);
    await d.client.controller.deleteVolume({ volumeId });
  });
});

describe("Block volumes: the device file is the only thing removed", () => {
  let d: DriverProcess;
  after(async () => destroyDriver(d));

  it("NodeUnpublishVolume removes the empty device file it bound, and refuses a file with data", async () => {
    d = await startDriver();
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [blockCapability()], capacityRange: { requiredBytes: 16 * 2 ** 20, limitBytes: 0 } })).volume!.volumeId!;
    const staging = d.path(uniqueName("stage"));
    const target = d.path(uniqueName("dev"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: blockCapability() });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: blockCapability() });
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target });
    assert.equal(existsSync(target), false);
    const data = d.path(uniqueName("data"));
    await fsp.writeFile(data, "a file that is not the driver's");
    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: data }), Code.FAILED_PRECONDITION, /which the driver did not make/);
    assert.ok(existsSync(data));
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    assert.deepEqual(await fsp.readdir(staging), [], "the device file under the staging path is gone");
  });
});
