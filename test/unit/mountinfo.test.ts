// Parsing /proc/self/mountinfo, and finding a directory's bind mounts in it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { MountIndex } from "../../src/mount/mount-index";
import { ListMounts, locate, mountTable, parseMountInfo, readMountInfo, type MountEntry, type Mounts } from "../../src/mount/mountinfo";
import { bindMount, unmount } from "../../src/mount/syscalls";

const SAMPLE = [
  "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
  "30 22 8:2 / /data rw,relatime shared:2 - xfs /dev/sda2 rw,prjquota",
  "41 30 8:2 /csi/volumes/hp-1/data /var/lib/kubelet/staging rw,relatime shared:2 - xfs /dev/sda2 rw",
  "42 22 8:2 /csi/volumes/hp-1/data /var/lib/kubelet/pods/p\\040with\\040space/mount ro,nosuid,relatime shared:2 - xfs /dev/sda2 rw",
  "this line is not mountinfo",
].join("\n");

/** The sample as the text way keeps it (a list) and as the event way does (an index). */
const indexed = (list: readonly MountEntry[]): Mounts => new MountIndex(list.map((entry, order) => ({ entry, order }))).current();

describe("mountinfo", () => {
  const entries = parseMountInfo(SAMPLE);

  it("parses fields, optional fields and escaped paths", () => {
    assert.equal(entries.length, 4, "the malformed line (no separator) is skipped");
    const pod = entries[3]!;
    assert.equal(pod.mountPoint, "/var/lib/kubelet/pods/p with space/mount");
    assert.deepEqual(pod.options, ["ro", "nosuid", "relatime"]);
    assert.equal(pod.fsType, "xfs");
    assert.equal(pod.source, "/dev/sda2");
    assert.deepEqual(entries[1]!.superOptions, ["rw", "prjquota"]);
  });

  for (const [kind, table] of [
    ["a list", new ListMounts(entries)],
    ["an index", indexed(entries)],
  ] as const) {
    it(`finds the mount containing a path by longest mount-point prefix, in ${kind}`, () => {
      assert.equal(table.containing("/data/csi/volumes/hp-1/data")!.mountPoint, "/data");
      assert.equal(table.containing("/database")!.mountPoint, "/", "/database is not under /data");
      assert.equal(table.containing("/data")!.mountPoint, "/data");
    });

    it(`locates a directory as (device, root) and finds its bind mounts, in ${kind}`, () => {
      const loc = locate(table, "/data/csi/volumes/hp-1/data")!;
      assert.deepEqual(loc, { device: "8:2", root: "/csi/volumes/hp-1/data" });
      assert.deepEqual(table.of(loc).map((m) => m.id), [41, 42]);
      assert.equal(table.at("/var/lib/kubelet/staging")!.id, 41);
      assert.equal(table.at("/var/lib/kubelet"), undefined);
      assert.deepEqual(table.onDevice("8:2").map((m) => m.id), [30, 41, 42]);
      assert.deepEqual(table.withSource("/dev/sda2").map((m) => m.id), [30, 41, 42]);
      assert.deepEqual(table.onLoopDevices(), []);
      assert.deepEqual(table.list.map((m) => m.id), [22, 30, 41, 42]);
    });
  }

  it("reads every field of the real table as a plain split of each line does, escaped paths included", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-mountinfo- with space"));
    bindMount(dir, dir);
    try {
      const text = readFileSync("/proc/self/mountinfo", "utf8");
      const unescape = (x: string) => x.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
      const expected = text.split("\n").filter(Boolean).map((line) => {
        const p = line.split(" ");
        const dash = p.indexOf("-", 6);
        return { id: Number(p[0]), parentId: Number(p[1]), device: p[2], root: unescape(p[3]!), mountPoint: unescape(p[4]!), options: p[5]!.split(","), fsType: p[dash + 1], source: unescape(p[dash + 2]!), superOptions: (p[dash + 3] ?? "").split(",") };
      });
      const parsed = parseMountInfo(text).map((m) => ({ id: m.id, parentId: m.parentId, device: m.device, root: m.root, mountPoint: m.mountPoint, options: m.options, fsType: m.fsType, source: m.source, superOptions: m.superOptions }));
      assert.deepEqual(parsed, expected);
      assert.ok(parsed.some((m) => m.mountPoint === dir), "the bind mount with a space in its path");
    } finally {
      unmount(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads this process's real mount table", async () => {
    const real = await readMountInfo();
    assert.ok(real.some((m) => m.mountPoint === "/"));
  });

  describe("the table is read again only when the kernel says it changed", () => {
    let dir: string;
    beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-mountinfo-"))));
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it("gives the same table while nothing changes", () => {
      const a = readMountInfo();
      assert.equal(readMountInfo(), a, "not parsed again");
    });

    it("sees a mount and an unmount made by this process at once", () => {
      const before = readMountInfo();
      bindMount(dir, dir);
      try {
        const after = readMountInfo();
        assert.notEqual(after, before);
        assert.equal(mountTable().at(dir)?.mountPoint, dir);
      } finally {
        unmount(dir);
      }
      assert.equal(mountTable().at(dir), undefined);
    });

    it("sees a mount made by another process in this namespace", () => {
      readMountInfo();
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "csi-lab-test", dir]);
      try {
        assert.equal(mountTable().at(dir)?.fsType, "tmpfs");
      } finally {
        execFileSync("umount", [dir]);
      }
      assert.equal(mountTable().at(dir), undefined);
    });

    it("sees every change of many in a row", () => {
      const dirs = Array.from({ length: 20 }, (_, i) => path.join(dir, String(i)));
      for (const d of dirs) execFileSync("mkdir", [d]);
      try {
        for (const [i, d] of dirs.entries()) {
          bindMount(d, d);
          assert.equal(readMountInfo().filter((m) => m.mountPoint.startsWith(dir + "/")).length, i + 1);
        }
      } finally {
        for (const d of [...dirs].reverse()) unmount(d);
      }
      assert.equal(readMountInfo().filter((m) => m.mountPoint.startsWith(dir + "/")).length, 0);
    });
  });
});
