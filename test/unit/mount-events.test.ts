// The mount table kept current by the kernel's mount events (src/mount/mount-events.ts)
// must say exactly what /proc/self/mountinfo says, field by field and in the same
// order, after every kind of change: mounts and unmounts made here and by other
// processes, remounts (which send no event), moves, mounts propagated from another
// namespace, a lazy unmount of a tree, and an event queue that overflowed. Where a
// seccomp profile refuses the calls, the text is read instead.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mountTableReads, mountTableSource, parseMountInfo, readMountInfo, type MountEntry } from "../../src/mount/mountinfo";
import { bindMount, mountFs, remountBind, unmount } from "../../src/mount/syscalls";
import { filterWorksHere, MOUNT_EVENT_CALLS, oldSeccompEnv } from "../sanity/old-seccomp";

const MS_RDONLY = 0x1;
const MS_NOSUID = 0x2;
const MS_NOEXEC = 0x8;

function line(e: MountEntry): string {
  return [e.id, e.parentId, e.device, e.root, e.mountPoint, e.fsType, e.source, e.options.join(","), e.superOptions.join(",")].join(" | ");
}

/** The table as kept, and as the kernel writes it now. */
function assertSameAsText(when: string): void {
  const kept = readMountInfo().map(line);
  const text = parseMountInfo(readFileSync("/proc/self/mountinfo", "utf8")).map(line);
  assert.deepEqual(kept, text, `the table ${when}`);
}

describe("the mount table kept by mount events", () => {
  let dir: string;
  before(function () {
    readMountInfo();
    if (mountTableSource() !== "events") this.skip(); // a kernel before 6.15: the text is read (mountinfo.test.ts)
  });
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-mount-events- "));
    mountFs("csi-lab events test", dir, "tmpfs", 0, "size=64m");
    execFileSync("mount", ["--make-private", dir]);
  });
  afterEach(() => {
    execFileSync("umount", ["-R", "-l", dir]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("matches mountinfo after mounts, remounts, moves and unmounts made here", () => {
    assertSameAsText("at the start");
    const a = path.join(dir, "a with space");
    const b = path.join(dir, "b");
    const c = path.join(dir, "c");
    for (const d of [a, b, c]) mkdirSync(d);
    bindMount(a, b);
    assertSameAsText("after a bind mount of a directory whose name has a space");
    remountBind(b, MS_RDONLY | MS_NOSUID);
    assertSameAsText("after a read-only remount, which sends no event");
    execFileSync("mount", ["--move", b, c]);
    assertSameAsText("after a move");
    bindMount(c, c);
    remountBind(c, MS_NOEXEC);
    assertSameAsText("after a bind stacked on itself");
    unmount(c);
    assertSameAsText("after the top one is unmounted");
    unmount(c);
    assertSameAsText("after the last one is unmounted");
  });

  it("matches mountinfo for a loop-mounted ext4 with super-block options, mounted by another process", function () {
    this.timeout(30_000);
    const image = path.join(dir, "fs.img");
    const target = path.join(dir, "mnt");
    mkdirSync(target);
    writeFileSync(image, "");
    execFileSync("truncate", ["-s", "32M", image]);
    execFileSync("mkfs.ext4", ["-q", image]);
    execFileSync("mount", ["-o", "loop,sync,lazytime,noatime", image, target]);
    try {
      assertSameAsText("after mount(8) attached a loop device and mounted it");
    } finally {
      execFileSync("umount", ["-d", target]);
    }
    assertSameAsText("after umount(8)");
  });

  it("matches mountinfo after mounts propagated from another namespace, and a lazy unmount of a tree", () => {
    const shared = path.join(dir, "shared");
    mkdirSync(shared);
    mountFs("csi-lab shared", shared, "tmpfs", 0, "size=1m");
    execFileSync("mount", ["--make-shared", shared]);
    mkdirSync(path.join(shared, "in"));
    // A child in a namespace of its own mounts under the shared mount: the mount propagates here.
    execFileSync("unshare", ["-m", "--propagation", "unchanged", "--", "mount", "-t", "tmpfs", "from-elsewhere", path.join(shared, "in")]);
    assert.ok(readMountInfo().some((m) => m.mountPoint === path.join(shared, "in") && m.source === "from-elsewhere"));
    assertSameAsText("after a mount propagated from another namespace");
    unmount(shared, { detach: true });
    assertSameAsText("after a lazy unmount of the tree");
  });

  it("lists the table again after the event queue overflowed, and then matches mountinfo", function () {
    this.timeout(60_000);
    const a = path.join(dir, "a");
    const b = path.join(dir, "b");
    mkdirSync(a);
    mkdirSync(b);
    readMountInfo();
    const before = mountTableReads();
    // 8,500 mounts and unmounts with no read in between: more events than a queue holds (16,384).
    const limit = Number(readFileSync("/proc/sys/fs/fanotify/max_queued_events", "utf8"));
    for (let i = 0; i < Math.ceil(limit / 2) + 300; i++) {
      bindMount(a, b);
      unmount(b);
    }
    bindMount(a, b);
    try {
      assertSameAsText("after the overflow");
      assert.equal(mountTableReads(), before + 1, "listed again once");
      assert.ok(readMountInfo().some((m) => m.mountPoint === b));
    } finally {
      unmount(b);
    }
    assertSameAsText("after the next change");
  });

  it("hands out a table that later changes do not alter", () => {
    const t = path.join(dir, "t");
    mkdirSync(t);
    const before = readMountInfo();
    const copy = [...before];
    bindMount(t, t);
    try {
      const after = readMountInfo();
      assert.notEqual(after, before);
      assert.deepEqual(before, copy, "the earlier table is as it was");
      assert.ok(after.some((m) => m.mountPoint === t));
      assert.equal(readMountInfo(), after, "unchanged since: the same table");
    } finally {
      unmount(t);
    }
  });

  it("gives way to the text if the event queue fails, and stays right", () => {
    // In a child process: close its event descriptor behind the table's back.
    const script = `const fs = require("node:fs");
      const mi = require(${JSON.stringify(require.resolve("../../src/mount/mountinfo"))});
      mi.readMountInfo();
      const before = mi.mountTableSource();
      const readsBefore = mi.mountTableReads();
      const fd = fs.readdirSync("/proc/self/fd").map(Number).find((n) => { try { return fs.readlinkSync("/proc/self/fd/" + n) === "anon_inode:[fanotify]"; } catch { return false; } });
      fs.closeSync(fd);
      const t = mi.readMountInfo();
      console.log(JSON.stringify({ before, closed: fd !== undefined, after: mi.mountTableSource(), reads: mi.mountTableReads() - readsBefore, same: JSON.stringify(t.map((m) => [m.id, m.mountPoint])) === JSON.stringify(mi.parseMountInfo(fs.readFileSync("/proc/self/mountinfo", "utf8")).map((m) => [m.id, m.mountPoint])) }));`;
    const out = JSON.parse(execFileSync(process.execPath, ["-e", script], { encoding: "utf8" })) as Record<string, unknown>;
    // The whole-read count goes on from where it was (a metrics counter): one read of the text more.
    assert.deepEqual(out, { before: "events", closed: true, after: "mountinfo", reads: 1, same: true });
  });

  it("is not used where a seccomp profile refuses the calls: the text is read", function () {
    if (!filterWorksHere) this.skip();
    const script = `const mi = require(${JSON.stringify(require.resolve("../../src/mount/mountinfo"))});
      const before = mi.mountTableSource();
      const t = mi.readMountInfo();
      console.log(JSON.stringify({ before, source: mi.mountTableSource(), entries: t.length, root: t.some((m) => m.mountPoint === "/") }));`;
    const out = JSON.parse(execFileSync(process.execPath, ["-e", script], { env: oldSeccompEnv(MOUNT_EVENT_CALLS), encoding: "utf8" })) as Record<string, unknown>;
    assert.equal(out.before, undefined, "none before the first read");
    assert.equal(out.source, "mountinfo");
    assert.equal(out.root, true);
    assert.equal(out.entries, parseMountInfo(readFileSync("/proc/self/mountinfo", "utf8")).length);
  });
});
