// The view live volumes are copied through: read-only, and no symlink is ever followed in it.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { bindMount } from "../../src/mount/syscalls";
import { readMountInfo } from "../../src/mount/mountinfo";
import { bindWithFlags, ownPlace, viewFlags } from "../../src/mount/bind";
import { sweepViews, withReadOnlyView, withView } from "../../src/mount/read-only-view";

describe("Read-only views", () => {
  let dir: string;
  let volume: string;
  let views: string;
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-view-"));
    volume = path.join(dir, "volume");
    views = path.join(dir, "views");
    await fsp.mkdir(path.join(volume, "sub"), { recursive: true });
    await fsp.mkdir(views);
    await fsp.mkdir(path.join(dir, "outside"));
    await fsp.writeFile(path.join(dir, "outside", "secret"), "secret");
    await fsp.writeFile(path.join(volume, "sub", "file"), "inside");
    // What a racing pod would plant: a directory replaced by a link to outside.
    await fsp.symlink(path.join(dir, "outside"), path.join(volume, "swapped"));
  });
  afterEach(async () => {
    await sweepViews(views);
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("reads files, reads links as links, but never resolves a path through a symlink", async () => {
    await withReadOnlyView(volume, views, async (view) => {
      assert.equal(await fsp.readFile(path.join(view, "sub", "file"), "utf8"), "inside");
      assert.equal(await fsp.readlink(path.join(view, "swapped")), path.join(dir, "outside"));
      await assert.rejects(fsp.readFile(path.join(view, "swapped", "secret")), /ELOOP/);
      await assert.rejects(fsp.readdir(path.join(view, "swapped")), /ELOOP/);
    });
  });

  it("is read-only", async () => {
    await withReadOnlyView(volume, views, async (view) => {
      await assert.rejects(fsp.writeFile(path.join(view, "new"), "x"), /EROFS/);
    });
  });

  it("a writable view (a copy into a share's tmp) is written, but never resolves a path through a symlink either", async () => {
    await withView(views, (view) => bindWithFlags(volume, ownPlace(view), viewFlags(true)), async (view) => {
      await fsp.writeFile(path.join(view, "sub", "new"), "written");
      await assert.rejects(fsp.writeFile(path.join(view, "swapped", "new"), "x"), /ELOOP/);
      await assert.rejects(fsp.mkdir(path.join(view, "swapped", "dir")), /ELOOP/);
    });
    assert.equal(await fsp.readFile(path.join(volume, "sub", "new"), "utf8"), "written");
    assert.deepEqual(await fsp.readdir(path.join(dir, "outside")), ["secret"], "nothing written outside");
  });

  it("is unmounted and removed afterwards, even when the work fails", async () => {
    await assert.rejects(withReadOnlyView(volume, views, async () => Promise.reject(new Error("copy failed"))), /copy failed/);
    assert.deepEqual(await fsp.readdir(views), []);
    assert.ok(!readMountInfo().some((m) => m.mountPoint.startsWith(views + "/")));
    // Also when mounting it failed part way (a share agent that missed its deadline may have mounted it all the same).
    const mountThenFail = (view: string) => {
      bindMount(volume, view);
      throw new Error("no answer");
    };
    await assert.rejects(withView(views, mountThenFail, async () => "not reached"), /no answer/);
    assert.deepEqual(await fsp.readdir(views), []);
    assert.ok(!readMountInfo().some((m) => m.mountPoint.startsWith(views + "/")));
  });

  it("sweepViews unmounts and removes views a crash left behind", async () => {
    const stale = path.join(views, "0123456789abcdef");
    await fsp.mkdir(stale);
    bindMount(volume, stale);
    await sweepViews(views);
    assert.deepEqual(await fsp.readdir(views), []);
    assert.ok(!readMountInfo().some((m) => m.mountPoint === stale));
  });
});
