// A hostPath directory volume is the directory the driver made for it, not whatever is at its name.
//
// A dir volume lives at <root>/data/<id>. Whoever may rename inside the root (or bind over that
// name) can put another directory there. CreateVolume records which directory it made (its
// identity: inode number with birth time or generation), and the driver acts on data/<id> only
// while it is that one: DeleteVolume answers NOT_FOUND with nothing deleted — as it does for a
// shared volume whose directory its marker does not prove — and a stage or a mode change answers
// FAILED_PRECONDITION with nothing mounted or changed. A swap at the last moment (just before
// the delete's move, just before a directory is opened to act on) is made by a preload hook
// (swap-hook.ts): the moments a test cannot hit by timing.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { HOSTPATH } from "./backends";
import { Code, destroyDriver, DIR_VOLUMES, expectCode, isMounted, mountCapability, shellQuote, uniqueName, type DriverProcess } from "./harness";
import { startSwapDriver } from "./swap-driver";
import { bindMount, unmount } from "../../src/mount/syscalls";

describe("A hostPath directory volume whose directory is swapped for another", () => {
  let d: DriverProcess;
  let swapFile: string;
  before(async () => ({ d, swapFile } = await startSwapDriver(DIR_VOLUMES)));
  after(async () => destroyDriver(d));

  /** A volume holding a file of its own, and someone else's directory with their data, on the same disk. */
  async function volumeAndStranger(): Promise<{ volumeId: string; dir: string; theirs: string }> {
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: HOSTPATH.parameters(d) })).volume!
      .volumeId!;
    const dir = HOSTPATH.contentDir(d, volumeId);
    await fsp.writeFile(path.join(dir, "mine"), "the volume's");
    const theirs = d.scratch(uniqueName("theirs"));
    await fsp.mkdir(theirs, { mode: 0o755 });
    await fsp.writeFile(path.join(theirs, "data"), "keep");
    return { volumeId, dir, theirs };
  }

  /** Put their directory at the volume's name, the volume's own beside it. */
  const swap = async (dir: string, theirs: string) => {
    await fsp.rename(dir, dir + ".moved");
    await fsp.rename(theirs, dir);
  };
  const swapBack = async (dir: string, theirs: string) => {
    await fsp.rename(dir, theirs);
    await fsp.rename(dir + ".moved", dir);
  };
  const swapScript = (when: string, dir: string, theirs: string) =>
    `${when}\nmv ${shellQuote(dir)} ${shellQuote(dir + ".moved")}\nmv ${shellQuote(theirs)} ${shellQuote(dir)}\n`;

  it("DeleteVolume answers NOT_FOUND and deletes nothing; the volume reports it; swapped back, it is deleted", async () => {
    const { volumeId, dir, theirs } = await volumeAndStranger();
    await swap(dir, theirs);
    await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.NOT_FOUND, /not the directory this driver made for it/);
    assert.equal(await fsp.readFile(path.join(dir, "data"), "utf8"), "keep", "their directory is where it was, whole");
    assert.ok(existsSync(path.join(d.root, "volumes", `${volumeId}.json`)), "the volume still exists");
    const { status } = await d.client.controller.controllerGetVolume({ volumeId });
    assert.equal(status!.volumeCondition!.abnormal, true);
    assert.match(status!.volumeCondition!.message!, /replaced by another directory/);

    await swapBack(dir, theirs);
    await d.client.controller.deleteVolume({ volumeId });
    assert.equal(existsSync(dir), false);
    assert.equal(await fsp.readFile(path.join(theirs, "data"), "utf8"), "keep");
  });

  it("DeleteVolume with the swap made just before its move: what was moved is put back, NOT_FOUND, nothing deleted", async () => {
    const { volumeId, dir, theirs } = await volumeAndStranger();
    await fsp.writeFile(swapFile, swapScript("move", dir, theirs));
    await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.NOT_FOUND, /replaced by another directory while it was being deleted/);
    assert.equal(existsSync(swapFile), false, "the swap was made");
    assert.equal(await fsp.readFile(path.join(dir, "data"), "utf8"), "keep", "their directory is back where it was, whole");
    assert.equal(await fsp.readFile(path.join(dir + ".moved", "mine"), "utf8"), "the volume's");
    assert.deepEqual(await fsp.readdir(path.join(d.root, ".trash")), [], "nothing of theirs is left in the trash");
    assert.ok(existsSync(path.join(d.root, "volumes", `${volumeId}.json`)), "the volume still exists");

    await swapBack(dir, theirs);
    await d.client.controller.deleteVolume({ volumeId });
    assert.equal(existsSync(dir), false);
    assert.equal(await fsp.readFile(path.join(theirs, "data"), "utf8"), "keep");
  });

  it("NodeStageVolume answers FAILED_PRECONDITION and mounts nothing, also when the swap comes just before the bind", async () => {
    const { volumeId, dir, theirs } = await volumeAndStranger();
    const stagingTargetPath = d.path(uniqueName("staging"));
    const stage = () => d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability() });
    await swap(dir, theirs);
    await expectCode(stage(), Code.FAILED_PRECONDITION, /replaced by another directory/);
    assert.equal(await isMounted(stagingTargetPath), false);
    await swapBack(dir, theirs);

    // Checked by name, then swapped as the directory is opened to be bound: the descriptor is what is proven.
    await fsp.writeFile(swapFile, swapScript(`open ${dir}`, dir, theirs));
    await expectCode(stage(), Code.FAILED_PRECONDITION, /not the directory this driver made for it/);
    assert.equal(existsSync(swapFile), false, "the swap was made");
    assert.equal(await isMounted(stagingTargetPath), false, "their directory was not bound");
    await swapBack(dir, theirs);

    await stage();
    assert.equal(await fsp.readFile(path.join(stagingTargetPath, "mine"), "utf8"), "the volume's");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
  });

  it("ControllerModifyVolume (mode) answers FAILED_PRECONDITION and chmods nothing, also when the swap comes just before the chmod", async () => {
    const { volumeId, dir, theirs } = await volumeAndStranger();
    const modify = () => d.client.controller.controllerModifyVolume({ volumeId, mutableParameters: { mode: "0700" } });
    const theirMode = async () => (await fsp.stat(dir)).mode & 0o7777;
    await swap(dir, theirs);
    await expectCode(modify(), Code.FAILED_PRECONDITION, /replaced by another directory/);
    assert.equal(await theirMode(), 0o755);
    await swapBack(dir, theirs);

    await fsp.writeFile(swapFile, swapScript(`open ${dir}`, dir, theirs));
    await expectCode(modify(), Code.FAILED_PRECONDITION, /not the directory this driver made for it/);
    assert.equal(existsSync(swapFile), false, "the swap was made");
    assert.equal(await theirMode(), 0o755, "their directory keeps its mode");
    await swapBack(dir, theirs);

    await modify();
    assert.equal((await fsp.stat(dir)).mode & 0o7777, 0o700);
  });

  // Undoing a stage or a publish knows the volume's mounts by its directory's identity, not by what is at its name: a bind of
  // another directory put there is not the volume's, and the volume's own mounts can still be undone (a pod must be able to go).
  it("NodeUnpublishVolume and NodeUnstageVolume undo the volume's own mounts while another directory is at its name, and never unmount that one", async () => {
    const { volumeId, dir, theirs } = await volumeAndStranger();
    const cap = mountCapability();
    const stagingTargetPath = d.path(uniqueName("staging"));
    const targetPath = d.path(uniqueName("target"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap });
    await swap(dir, theirs);
    // Someone binds the directory now at the volume's name where a target of the volume would be.
    const theirTarget = d.path(uniqueName("target"));
    await fsp.mkdir(theirTarget);
    bindMount(dir, theirTarget);

    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
    assert.equal(await isMounted(targetPath), false, "the volume's own bind is undone");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    assert.equal(await isMounted(stagingTargetPath), false, "and its staging");

    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: theirTarget }), Code.FAILED_PRECONDITION, /not volume .* it was left alone/);
    assert.equal(await isMounted(theirTarget), true, "their bind stays");
    assert.equal(await fsp.readFile(path.join(theirTarget, "data"), "utf8"), "keep");

    unmount(theirTarget);
    await swapBack(dir, theirs);
    await d.client.controller.deleteVolume({ volumeId });
  });

  // DeleteVolume moves the directory into .trash (its commit point), checks what it moved, and only then removes the
  // record. A crash in between leaves both; the move may have caught another directory before the check saw it.
  it("a delete cut off between its move and the record's removal is settled at the next start: finished if it moved the volume's directory, else undone", async () => {
    const record = (id: string) => path.join(d.root, "volumes", `${id}.json`);
    const cutOff = (id: string) => path.join(d.root, ".trash", `${id}.delete-cut`);
    const own = await volumeAndStranger();
    const caught = await volumeAndStranger();
    const besides = await volumeAndStranger();
    await d.stop();
    await fsp.rename(own.dir, cutOff(own.volumeId));
    for (const v of [caught, besides]) {
      await fsp.rename(v.dir, d.scratch(uniqueName("own"))); // the volume's own, out of the way
      await fsp.rename(v.theirs, cutOff(v.volumeId));
    }
    await fsp.mkdir(besides.dir); // and a third directory at that one's name since
    await d.start();

    assert.equal(existsSync(record(own.volumeId)), false, "the delete of the volume's own directory is finished");
    assert.deepEqual(await fsp.readdir(path.join(d.root, ".trash")), []);
    assert.equal(await fsp.readFile(path.join(caught.dir, "data"), "utf8"), "keep", "another directory is put back at the name");
    assert.ok(existsSync(record(caught.volumeId)), "and that volume stays");
    const aside = (await fsp.readdir(path.join(d.root, "data"))).filter((n) => n.startsWith(`${besides.volumeId}.not-deleted-`));
    assert.equal(aside.length, 1, "beside it when the name is taken");
    await d.restart();
    assert.equal(await fsp.readFile(path.join(d.root, "data", aside[0]!, "data"), "utf8"), "keep", "and no later sweep removes it");
  });

  it("a record written before identities were recorded is used by its directory's name, as before", async () => {
    const { volumeId, dir } = await volumeAndStranger();
    const file = path.join(d.root, "volumes", `${volumeId}.json`);
    const meta = JSON.parse(await fsp.readFile(file, "utf8"));
    assert.ok(meta.dataIdentity, "a new record names its directory");
    delete meta.dataIdentity;
    await fsp.writeFile(file, JSON.stringify(meta));
    const stagingTargetPath = d.path(uniqueName("staging"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability() });
    assert.equal(await fsp.readFile(path.join(stagingTargetPath, "mine"), "utf8"), "the volume's");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.controllerModifyVolume({ volumeId, mutableParameters: { mode: "0750" } });
    await d.client.controller.deleteVolume({ volumeId });
    assert.equal(existsSync(dir), false);
  });
});
