// Which mounts show an image volume: through the loop devices attached to
// its file (src/mount/volume-mounts.ts). What backs a mounted loop device is
// remembered with its mount; these real loop devices and ext4 mounts check
// that the answer follows the device when it is attached to another file.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ioctlInt } from "../../src/mount/ioctl";
import { attachLoop, type LoopDevice } from "../../src/mount/loop";
import { mountTable } from "../../src/mount/mountinfo";
import { mountFs, unmount } from "../../src/mount/syscalls";
import { mountsOfImage } from "../../src/mount/volume-mounts";

const LOOP_CHANGE_FD = 0x4c06;
const MS_RDONLY = 1;

describe("mounts of an image, through its loop devices", () => {
  let dir: string;
  const image = (name: string) => path.join(dir, name);
  const found = (name: string) => mountsOfImage(image(name), mountTable()).mounts.map((m) => m.mountPoint);

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-volume-mounts-"));
    writeFileSync(image("a"), "");
    truncateSync(image("a"), 4 * 1024 * 1024);
    execFileSync("mkfs.ext4", ["-q", "-F", image("a")]);
    copyFileSync(image("a"), image("b")); // the same bytes, another file
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Attach `name`, mount its ext4 at a new directory, and let the device go with the mount. */
  async function mountImage(name: string, at: string, readOnly: boolean): Promise<LoopDevice> {
    mkdirSync(at, { recursive: true });
    const { loop, fd } = await attachLoop(image(name), { readOnly });
    try {
      mountFs(loop.path, at, "ext4", readOnly ? MS_RDONLY : 0, "");
    } finally {
      closeSync(fd);
    }
    return loop;
  }

  it("finds the image's mount, and another image's after the mount goes and the device is attached again", async () => {
    const at = path.join(dir, "m1");
    await mountImage("a", at, false);
    try {
      assert.deepEqual(found("a"), [at]);
      assert.deepEqual(found("a"), [at], "asked again");
      assert.deepEqual(found("b"), []);
    } finally {
      unmount(at);
    }
    assert.deepEqual(found("a"), []);
    await mountImage("b", at, false);
    try {
      assert.deepEqual(found("b"), [at]);
      assert.deepEqual(found("a"), []);
    } finally {
      unmount(at);
    }
  });

  it("follows a read-only device whose file is swapped while it is mounted (LOOP_CHANGE_FD)", async () => {
    const at = path.join(dir, "m2");
    const loop = await mountImage("a", at, true);
    try {
      assert.deepEqual(found("a"), [at]);
      assert.deepEqual(found("a"), [at], "asked again");
      const file = openSync(image("b"), "r");
      const dev = openSync(loop.path, "r");
      try {
        ioctlInt(dev, LOOP_CHANGE_FD, file, loop.path);
      } finally {
        closeSync(dev);
        closeSync(file);
      }
      assert.deepEqual(found("a"), [], "the mount shows the other file now");
      assert.deepEqual(found("b"), [at]);
    } finally {
      unmount(at);
    }
  });
});
