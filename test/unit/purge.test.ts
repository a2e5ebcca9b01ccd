// Removing what a volume leaves behind (backends/hostpath/content.ts,
// purge): an empty directory or a file in one step, anything else with
// fs.rm, and never through a symlink. Real files in a temporary directory.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { purge } from "../../src/backends/hostpath/content";
import { uniqueSuffix } from "../../src/storage/unique-name";

async function exists(p: string): Promise<boolean> {
  return fsp.lstat(p).then(
    () => true,
    () => false,
  );
}

describe("purge", () => {
  let dir: string;
  beforeEach(async () => (dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-purge-"))));
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));

  it("removes an empty directory, a file, and a tree", async () => {
    const empty = path.join(dir, "empty");
    await fsp.mkdir(empty);
    const file = path.join(dir, "image");
    await fsp.writeFile(file, "x");
    const tree = path.join(dir, "tree");
    await fsp.mkdir(path.join(tree, "a", "b"), { recursive: true });
    await fsp.writeFile(path.join(tree, "a", "b", "f"), "y");
    await fsp.writeFile(path.join(tree, "g"), "z");
    for (const p of [empty, file, tree]) {
      await purge(p, undefined);
      assert.equal(await exists(p), false, `${p} is still there`);
    }
  });

  it("removes a symlink, not what it points at", async () => {
    const outside = path.join(dir, "outside");
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, "keep"), "k");
    const toDir = path.join(dir, "to-dir");
    await fsp.symlink(outside, toDir);
    const toFile = path.join(dir, "to-file");
    await fsp.symlink(path.join(outside, "keep"), toFile);
    await purge(toDir, undefined);
    await purge(toFile, undefined);
    assert.equal(await exists(toDir), false);
    assert.equal(await exists(toFile), false);
    assert.equal(await fsp.readFile(path.join(outside, "keep"), "utf8"), "k");
  });

  it("is done when there is nothing to remove", async () => {
    await purge(path.join(dir, "never-was"), undefined);
  });

  it("reports what it cannot remove, and leaves it", async function () {
    // A directory that cannot be written to: its entries cannot be removed
    // (root passes permission checks, so the immutable attribute is used
    // where the file system has it; else the case is skipped).
    const locked = path.join(dir, "locked");
    await fsp.mkdir(locked);
    await fsp.writeFile(path.join(locked, "f"), "f");
    const { spawnSync } = await import("node:child_process");
    if (spawnSync("chattr", ["+i", locked]).status !== 0) this.skip();
    try {
      await assert.rejects(purge(locked, undefined), /EPERM/);
      assert.equal(await exists(path.join(locked, "f")), true);
    } finally {
      spawnSync("chattr", ["-i", locked]);
    }
  });
});

describe("uniqueSuffix", () => {
  it("never repeats, and makes a plain file-name part", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const s = uniqueSuffix();
      assert.match(s, /^[0-9a-z]+$/);
      assert.ok(!seen.has(s), `${s} twice`);
      seen.add(s);
    }
  });
});
