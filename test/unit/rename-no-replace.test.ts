// A rename that never replaces what is at the new name (src/storage/rename-no-replace.ts): a plain
// rename puts its source in place of a file or an empty directory there, and that entry is gone.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renameNoReplace } from "../../src/storage/rename-no-replace";

describe("renameNoReplace", () => {
  let dir: string;
  beforeEach(async () => (dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-rename-"))));
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));

  it("renames to a free name", async () => {
    await fsp.mkdir(path.join(dir, "a"));
    await renameNoReplace(path.join(dir, "a"), path.join(dir, "b"));
    assert.deepEqual(await fsp.readdir(dir), ["b"]);
  });

  for (const [what, make] of [
    ["a file", (p: string) => fsp.writeFile(p, "theirs")],
    ["an empty directory", (p: string) => fsp.mkdir(p)],
    ["a symlink", (p: string) => fsp.symlink("/", p)],
  ] as const) {
    it(`answers EEXIST, and moves nothing, where ${what} is at the new name`, async () => {
      const [from, to] = [path.join(dir, "mine"), path.join(dir, "theirs")];
      await fsp.writeFile(from, "mine");
      await make(to);
      await assert.rejects(renameNoReplace(from, to), { code: "EEXIST" });
      assert.equal(await fsp.readFile(from, "utf8"), "mine");
      assert.ok(await fsp.lstat(to));
    });
  }
});
