// DeleteVolume removes what a volume held — not a file system someone mounted inside it.
//
// A hostPath volume's directory is a plain directory of the node, and something can be mounted
// inside it: an administrator's bind or disk, or a pod's own mount carried there by mount
// propagation (mountPropagation: Bidirectional). GNU rm -rf, which removes a volume's tree,
// goes down into every file system mounted in that tree and empties it before it fails on the
// mount point. So the driver removes no tree with anything mounted in it: DeleteVolume answers
// FAILED_PRECONDITION naming the mount and deletes nothing, and the start-up sweep leaves a
// cut-off delete of such a tree where it is, with a warning.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "../../src/mount/mountinfo";
import { mountFs, unmount } from "../../src/mount/syscalls";
import { HOSTPATH } from "./backends";
import { Code, destroyDriver, DIR_VOLUMES, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("DeleteVolume of a hostPath volume with a file system mounted inside it", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  /** A volume whose directory holds a tmpfs of someone else's at inner/, with a file of theirs in it. */
  async function volumeWithMountInside(): Promise<{ volumeId: string; inner: string }> {
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: HOSTPATH.parameters(d) })).volume!
      .volumeId!;
    const dir = HOSTPATH.contentDir(d, volumeId);
    await fsp.writeFile(path.join(dir, "mine"), "the volume's");
    const inner = path.join(dir, "inner");
    await fsp.mkdir(inner);
    mountFs("someone-else", inner, "tmpfs", 0, "size=1m");
    await fsp.writeFile(path.join(inner, "theirs"), "keep");
    return { volumeId, inner };
  }

  const mounted = (p: string) => readMountInfo().some((m) => m.mountPoint === p);

  it("is FAILED_PRECONDITION naming the mount; nothing is deleted, and once it is unmounted the delete goes through", async () => {
    const { volumeId, inner } = await volumeWithMountInside();
    await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.FAILED_PRECONDITION, /someone-else/);
    assert.equal(await fsp.readFile(path.join(inner, "theirs"), "utf8"), "keep");
    assert.ok(mounted(inner));
    assert.ok((await d.client.controller.controllerGetVolume({ volumeId })).volume, "the volume is still there");

    unmount(inner, { detach: true });
    await d.client.controller.deleteVolume({ volumeId });
    assert.equal(existsSync(HOSTPATH.contentDir(d, volumeId)), false);
  });

  it("the start-up sweep does not empty it either: a delete cut off after its commit point stays unfinished, with a warning", async () => {
    const { volumeId } = await volumeWithMountInside();
    await d.stop();
    // A delete interrupted after its commit point, the move of the volume's directory into .trash (the mount came after).
    const moved = path.join(d.root, ".trash", `${volumeId}.delete-cut`);
    await fsp.rename(HOSTPATH.contentDir(d, volumeId), moved);
    const theirs = path.join(moved, "inner");
    await d.start();
    assert.equal(await fsp.readFile(path.join(theirs, "theirs"), "utf8"), "keep");
    assert.ok(mounted(theirs));
    assert.ok(d.logs.some((l) => l.includes(volumeId) && l.includes("someone-else")), "the leftover is named in a warning");

    unmount(theirs, { detach: true });
    await d.restart();
    assert.equal(existsSync(moved), false, "the next start removes it");
    assert.equal(existsSync(path.join(d.root, "volumes", `${volumeId}.json`)), false, "and the delete is finished");
  });
});
