// A shared-volume ID names its share and directory, so an ID alone proves nothing. The driver uses
// only allowed shares, deletes only what its marker proves it made for that very ID, and never
// adopts a directory holding someone else's data (docs/security.md).
import assert from "node:assert/strict";
import { existsSync, promises as fsp, readFileSync } from "node:fs";
import * as path from "node:path";
import { encodePart } from "../../src/backends/nfs/volume-id";
import { Code, destroyDriver, expectCode, Mode, mountCapability, uniqueName, type DriverProcess } from "./harness";
import { SECCOMP_VARIANTS, startFor } from "./seccomp-variants";

const RWX = Mode.MULTI_NODE_MULTI_WRITER;

for (const variant of SECCOMP_VARIANTS) {
describe(`Shared volumes: proof before any delete${variant.title}`, function () {
  let d: DriverProcess;
  const idOn = (share: string, subDir: string, onDelete = "d") => `nfs1:${onDelete}::${encodePart(share.slice(1))}:${encodePart(subDir)}`;
  before(async function () {
    if (variant.skip) this.skip();
    d = await startFor(variant);
    await fsp.mkdir(d.share, { recursive: true });
  });
  after(async () => destroyDriver(d));

  const create = async (extra: Record<string, string> = {}) =>
    (await d.client.controller.createVolume({ name: uniqueName("pvc"), volumeCapabilities: [mountCapability(RWX)], parameters: { backend: "nfs", share: d.share, ...extra } })).volume!;

  /** Another tenant's directory, on the allowed share, that the driver never made. */
  async function tenantData(): Promise<string> {
    const dir = path.join(d.share, uniqueName("tenant"));
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, "records"), "theirs");
    return dir;
  }

  it("DeleteVolume of a crafted ID naming another tenant's directory deletes nothing: NOT_FOUND", async () => {
    const dir = await tenantData();
    await expectCode(d.client.controller.deleteVolume({ volumeId: idOn(d.share, path.basename(dir)) }), Code.NOT_FOUND, /was not made by this driver .*nothing was deleted/);
    assert.equal(await fsp.readFile(path.join(dir, "records"), "utf8"), "theirs");
  });

  it("DeleteVolume of an ID naming a directory off the allowed shares does not even look: NOT_FOUND", async () => {
    const outside = d.scratch(uniqueName("app"));
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, "keep"), "x");
    for (const id of [idOn(outside, "data"), idOn(path.dirname(outside), path.basename(outside)), "nfs1:d:::etc", "nfs1:d:::opt2,app"]) {
      await expectCode(d.client.controller.deleteVolume({ volumeId: id }), Code.NOT_FOUND, /not one this driver may delete/);
    }
    assert.ok(existsSync(path.join(outside, "keep")));
  });

  it("a real volume's ID with another onDelete letter is not proof", async () => {
    const v = await create({ onDelete: "retain" });
    const subDir = v.volumeContext!["csi-lab/subDir"]!;
    await fsp.writeFile(path.join(d.share, subDir, "data"), "x");
    await expectCode(d.client.controller.deleteVolume({ volumeId: idOn(d.share, subDir, "d") }), Code.NOT_FOUND, /nothing was deleted/);
    assert.ok(existsSync(path.join(d.share, subDir, "data")));
    await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    assert.ok(existsSync(path.join(d.share, subDir, "data")), "retained");
  });

  it("a directory replaced since the driver made it (another inode) is not deleted", async () => {
    const v = await create();
    const dir = path.join(d.share, v.volumeContext!["csi-lab/subDir"]!);
    await fsp.rm(dir, { recursive: true });
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, "new"), "someone else's");
    await expectCode(d.client.controller.deleteVolume({ volumeId: v.volumeId }), Code.NOT_FOUND, /nothing was deleted/);
    assert.ok(existsSync(path.join(dir, "new")));
  });

  it("a directory made since in the very inode of the driver's is not deleted", async function () {
    const v = await create();
    const dir = path.join(d.share, v.volumeContext!["csi-lab/subDir"]!);
    const ino = async () => (await fsp.lstat(dir, { bigint: true })).ino;
    const made = await ino();
    await fsp.rmdir(dir);
    // ext4 gives a freed inode to the next directory made: make one until it is that one.
    for (let i = 0; i < 20 && !existsSync(dir); i++) {
      await fsp.mkdir(dir);
      if ((await ino()) !== made) await fsp.rename(dir, path.join(d.share, uniqueName("elsewhere")));
    }
    // ext4 (this machine's /tmp) does so at once; another file system may not, and then this shows nothing.
    if (!existsSync(dir)) this.skip();
    assert.equal(await ino(), made, "the new directory has the old one's inode number");
    await fsp.writeFile(path.join(dir, "new"), "someone else's");
    await expectCode(d.client.controller.deleteVolume({ volumeId: v.volumeId }), Code.NOT_FOUND, /nothing was deleted/);
    assert.equal(await fsp.readFile(path.join(dir, "new"), "utf8"), "someone else's");
  });

  it("a marker of version 2 (inode and birth time, as the driver wrote before) still proves its directory", async function () {
    if (variant.env) this.skip(); // written where statx answered; without statx the birth time cannot be read back
    const v = await create();
    const dir = path.join(d.share, v.volumeContext!["csi-lab/subDir"]!);
    const markers = path.join(d.share, ".csi-lab", "volumes");
    const file = (await fsp.readdir(markers)).map((f) => path.join(markers, f)).find((f) => readFileSync(f, "utf8").includes(JSON.stringify(v.volumeId)));
    assert.ok(file, "the volume's marker");
    const st = await fsp.lstat(dir, { bigint: true });
    const marker = JSON.parse(await fsp.readFile(file, "utf8")) as Record<string, unknown>;
    await fsp.writeFile(file, JSON.stringify({ ...marker, version: 2, dir: `${st.ino}:${st.birthtimeNs}` }) + "\n");
    await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    assert.equal(existsSync(dir), false);
  });

  it("the driver's own volume is deleted, and a retry after that is OK", async () => {
    const v = await create();
    const dir = path.join(d.share, v.volumeContext!["csi-lab/subDir"]!);
    await fsp.writeFile(path.join(dir, "data"), "x");
    await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    assert.equal(existsSync(dir), false);
    await d.client.controller.deleteVolume({ volumeId: v.volumeId });
  });

  it("CreateVolume never adopts a directory holding data it did not make: ALREADY_EXISTS naming it", async () => {
    const dir = await tenantData();
    await expectCode(create({ subDir: path.basename(dir) }), Code.ALREADY_EXISTS, /already holds data that this driver did not put there/);
    assert.equal(await fsp.readFile(path.join(dir, "records"), "utf8"), "theirs");
    // An empty one may be used.
    const empty = path.join(d.share, uniqueName("empty"));
    await fsp.mkdir(empty);
    await create({ subDir: path.basename(empty) });
  });

  it("CreateVolume on a share that is not allowed, or through a symlink on the share, is refused", async () => {
    await expectCode(create({ share: d.scratch() }), Code.INVALID_ARGUMENT, /not a share this driver may use/);
    await expectCode(create({ share: "/" }), Code.INVALID_ARGUMENT);
    await fsp.symlink("/", path.join(d.share, "to-root"));
    await expectCode(create({ subDir: "to-root/srv-victim" }), Code.FAILED_PRECONDITION, /symbolic link/);
    assert.equal(existsSync("/srv-victim"), false);
  });

  it("a static volume (an unmarked directory on an allowed share) can be mounted, and is never deleted", async () => {
    const dir = await tenantData();
    const volumeId = idOn(d.share, path.basename(dir));
    const staging = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability(RWX) });
    assert.equal(await fsp.readFile(path.join(staging, "records"), "utf8"), "theirs");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.NOT_FOUND);
    assert.ok(existsSync(path.join(dir, "records")));
  });

  it("the node refuses to stage a volume on a share it may not use", async () => {
    const outside = d.scratch(uniqueName("other"));
    await fsp.mkdir(path.join(outside, "data"), { recursive: true });
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId: idOn(outside, "data"), stagingTargetPath: d.path(uniqueName("stage")), volumeCapability: mountCapability(RWX) }),
      Code.NOT_FOUND,
      /not a share this driver may use/,
    );
  });
});
}
