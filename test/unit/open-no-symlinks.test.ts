// Opening a node path's parent with no symlink followed: openat2 with
// RESOLVE_NO_SYMLINKS, and the O_NOFOLLOW walk it stands in for.
import assert from "node:assert/strict";
import { closeSync, fstatSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { CsiError } from "../../src/csi/errors";
import { anchor, nodePath } from "../../src/node/node-path";
import { openDirNoSymlinks } from "../../src/mount/open-no-symlinks";
import type { Driver } from "../../src/server/driver";

describe("opening a directory with no symlink on its path", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), "no-symlinks-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("opens a directory, and it is that directory", () => {
    mkdirSync(path.join(dir, "a/b"), { recursive: true });
    const o = openDirNoSymlinks(path.join(dir, "a/b"));
    assert.equal(o.kind, "open");
    if (o.kind !== "open") return;
    try {
      assert.equal(fstatSync(o.fd).ino, statSync(path.join(dir, "a/b")).ino);
    } finally {
      closeSync(o.fd);
    }
  });

  it("says absent for a missing component, and hands anything else to the walk", () => {
    mkdirSync(path.join(dir, "a"));
    symlinkSync(path.join(dir, "a"), path.join(dir, "link"));
    writeFileSync(path.join(dir, "file"), "x");
    assert.deepEqual(openDirNoSymlinks(path.join(dir, "missing/b")), { kind: "absent" });
    assert.deepEqual(openDirNoSymlinks(path.join(dir, "link")), { kind: "ask-the-walk" }, "a symlink as the last component");
    assert.deepEqual(openDirNoSymlinks(path.join(dir, "link/x")), { kind: "ask-the-walk" }, "a symlink on the way, before a missing component");
    assert.deepEqual(openDirNoSymlinks(path.join(dir, "file/x")), { kind: "ask-the-walk" });
    assert.deepEqual(openDirNoSymlinks("/proc/self/cwd"), { kind: "ask-the-walk" }, "a /proc magic link");
  });

  describe("a node path's anchor", () => {
    const driverFor = (kubeletDir: string): Driver => ({ config: { kubeletDirs: [kubeletDir], root: path.join(dir, "root") } }) as unknown as Driver;

    it("is the parent the path names, also when the kubelet directory itself is spelled through a symlink", () => {
      const real = path.join(dir, "real-kubelet");
      mkdirSync(path.join(real, "pods/p/volumes/v"), { recursive: true });
      symlinkSync(real, path.join(dir, "kubelet"));
      const np = nodePath(driverFor(path.join(dir, "kubelet")), path.join(dir, "kubelet/pods/p/volumes/v/mount"), "target_path");
      assert.equal(np.parent, path.join(real, "pods/p/volumes/v"));
      assert.equal(np.real, path.join(real, "pods/p/volumes/v/mount"));
      const a = anchor(np);
      assert.ok(a);
      try {
        assert.equal(statSync(path.dirname(a.at)).ino, statSync(path.join(real, "pods/p/volumes/v")).ino);
      } finally {
        a.close();
      }
    });

    it("refuses a directory on the way swapped for a symlink after the path was checked, naming it", () => {
      const k = path.join(dir, "kubelet");
      mkdirSync(path.join(k, "pods/p/volumes/v"), { recursive: true });
      mkdirSync(path.join(dir, "elsewhere/volumes/v"), { recursive: true });
      const np = nodePath(driverFor(k), path.join(k, "pods/p/volumes/v/mount"), "target_path");
      renameSync(path.join(k, "pods/p"), path.join(k, "pods/p-old"));
      symlinkSync(path.join(dir, "elsewhere"), path.join(k, "pods/p"));
      assert.throws(
        () => anchor(np),
        (err: CsiError) => err.code === 9 && /p on the way is not a directory any more/.test(err.message),
      );
    });

    it("is undefined when the parent is missing", () => {
      const k = path.join(dir, "kubelet");
      mkdirSync(path.join(k, "pods"), { recursive: true });
      const np = nodePath(driverFor(k), path.join(k, "pods/p/volumes/v/mount"), "target_path");
      assert.equal(np.parent, undefined);
      mkdirSync(path.join(k, "pods/q/volumes/v"), { recursive: true });
      const nq = nodePath(driverFor(k), path.join(k, "pods/q/volumes/v/mount"), "target_path");
      rmSync(path.join(k, "pods/q"), { recursive: true });
      assert.equal(anchor(nq), undefined);
    });
  });
});
