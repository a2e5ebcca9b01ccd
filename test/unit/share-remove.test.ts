// Removing a tree on a share while someone else changes it. A volume being
// deleted may still be mounted by a pod on another node, which can swap a
// directory inside it for a symlink to anywhere while the share agent
// empties the trash: the removal must delete only what is inside the tree.
import assert from "node:assert/strict";
import { closeSync, constants as fsc, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { removeTree } from "../../src/backends/nfs/share-walk";
import { startLinkSwapper } from "../sanity/link-swapper";

describe("share agent: removing a tree (removeTree)", function () {
  this.timeout(60_000);
  let base: string;
  beforeEach(() => (base = mkdtempSync(path.join(os.tmpdir(), "share-remove-"))));
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  /** Remove `name` from `dir` as the agent does: through the directory it opened. */
  const remove = (dir: string, name: string) => {
    const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
    try {
      removeTree(`/proc/self/fd/${fd}/${name}`);
    } finally {
      closeSync(fd);
    }
  };

  it("removes a whole tree, its symlinks as links, never what they point at", () => {
    const outside = path.join(base, "outside");
    mkdirSync(outside);
    writeFileSync(path.join(outside, "keep"), "x");
    const trash = path.join(base, "trash");
    mkdirSync(path.join(trash, "vol", "a", "b"), { recursive: true });
    writeFileSync(path.join(trash, "vol", "a", "b", "f"), "y");
    symlinkSync(outside, path.join(trash, "vol", "a", "link"));
    symlinkSync(outside, path.join(trash, "top-link"));
    remove(trash, "vol");
    remove(trash, "top-link");
    remove(trash, "absent"); // nothing there: nothing to do
    assert.deepEqual(readdirSync(trash), []);
    assert.ok(existsSync(path.join(outside, "keep")));
  });

  it("refuses a name that is not one entry of an open directory", () => {
    assert.throws(() => removeTree(path.join(base, "x")), /not an entry/);
    assert.throws(() => removeTree("/proc/self/fd/3/.."), /not an entry/);
    assert.throws(() => removeTree("/proc/self/fd/3/a/b"), /not an entry/);
  });

  it("deletes nothing outside the tree when a directory in it is swapped for a symlink while it is emptied", async () => {
    const outside = path.join(base, "outside");
    const trash = path.join(base, "trash");
    const d = path.join(trash, "vol", "d");
    mkdirSync(outside);
    mkdirSync(d, { recursive: true });
    const N = 3_000; // enough that emptying d takes a while after the first file goes
    for (let i = 0; i < N; i++) {
      writeFileSync(path.join(outside, `f${i}`), "");
      writeFileSync(path.join(d, `f${i}`), "");
    }
    // Another writer (a pod on another node, say) moves d aside as soon as its first file goes,
    // and links d to `outside`.
    const swapper = await startLinkSwapper(path.dirname(d), "d", outside);
    try {
      try {
        remove(trash, "vol");
      } catch {
        // d changed under the removal: failing is fine, deleting outside the tree is not
      }
      await swapper.swapped;
      assert.ok(existsSync(`${d}.moved`) || !existsSync(path.join(trash, "vol")), "the other writer never swapped d: the test did not test");
      const left = readdirSync(outside).length;
      assert.equal(left, N, `the removal deleted ${N - left} files outside the tree, through the link swapped in`);
    } finally {
      swapper.stop();
    }
  });
});
