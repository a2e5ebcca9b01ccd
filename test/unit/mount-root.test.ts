// statx at one path: is it the root of a mount, and of what? Real mounts in
// a scratch directory, compared with what the mount table says.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileNumbers, mountRootAt, sameFile, type MountRootAnswer } from "../../src/mount/mount-root";
import { mountTable } from "../../src/mount/mountinfo";
import { bindMount, mountFs, unmount } from "../../src/mount/syscalls";

describe("mount-root: statx says what is mounted at a path", () => {
  let dir: string;
  const mounted: string[] = [];
  const at = (name: string) => path.join(dir, name);
  const rootOf = (a: MountRootAnswer) => {
    assert.equal(a.kind, "mount");
    return (a as Extract<MountRootAnswer, { kind: "mount" }>).root;
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "mount-root-"));
    for (const d of ["volume", "beside", "target"]) mkdirSync(at(d));
  });
  afterEach(() => {
    for (const p of mounted.splice(0).reverse()) unmount(p, { detach: true });
    rmSync(dir, { recursive: true, force: true });
  });

  it("a plain directory is not a mount; a missing path, or one under a file, is absent", () => {
    assert.deepEqual(mountRootAt(at("volume")), { kind: "not-a-mount" });
    assert.deepEqual(mountRootAt(at("missing")), { kind: "absent" });
    writeFileSync(at("file"), "x");
    assert.deepEqual(mountRootAt(path.join(at("file"), "below")), { kind: "absent" });
  });

  it("a bind of a directory shows that directory's device and inode, and no other's", () => {
    bindMount(at("volume"), at("target"));
    mounted.push(at("target"));
    const root = rootOf(mountRootAt(at("target")));
    assert.equal(root.kind, "dir");
    assert.ok(sameFile(root, fileNumbers(at("volume"))!));
    assert.ok(!sameFile(root, fileNumbers(at("beside"))!), "a directory beside it has the same device and another inode");
    assert.ok(!sameFile(root, fileNumbers(dir)!));
    // The mount table agrees: something is mounted there.
    assert.ok(mountTable().at(at("target")));
  });

  it("sees the mount on top: a tmpfs stacked on the bind, then the bind again once it is gone", () => {
    bindMount(at("volume"), at("target"));
    mounted.push(at("target"));
    mountFs("stacked", at("target"), "tmpfs", 0, "size=1m");
    mounted.push(at("target"));
    const top = rootOf(mountRootAt(at("target")));
    assert.ok(!sameFile(top, fileNumbers(at("volume"))!));
    unmount(at("target"));
    mounted.pop();
    assert.ok(sameFile(rootOf(mountRootAt(at("target"))), fileNumbers(at("volume"))!));
    unmount(at("target"));
    mounted.pop();
    assert.deepEqual(mountRootAt(at("target")), { kind: "not-a-mount" });
  });

  it("a file bound onto a file is a mount of that file; a symlink is never followed", () => {
    writeFileSync(at("device"), "");
    writeFileSync(at("place"), "");
    bindMount(at("device"), at("place"));
    mounted.push(at("place"));
    const root = rootOf(mountRootAt(at("place")));
    assert.equal(root.kind, "file");
    assert.ok(sameFile(root, fileNumbers(at("device"))!));
    bindMount(at("volume"), at("target"));
    mounted.push(at("target"));
    symlinkSync(at("target"), at("link"));
    assert.deepEqual(mountRootAt(at("link")), { kind: "not-a-mount" }, "the link itself, not the mount it points to");
  });
});
