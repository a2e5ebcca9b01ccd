// A rename that never replaces what is at the new name (src/storage/rename-no-replace.ts): a plain
// rename puts its source in place of a file or an empty directory there, and that entry is gone.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, promises as fsp, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renameNoReplace } from "../../src/storage/rename-no-replace";
import { filterWorksHere, oldSeccompEnv } from "../sanity/old-seccomp";
import { swapEnv } from "../sanity/swap-hook";

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

// Where the file system has no RENAME_NOREPLACE (a Linux NFS client answers EINVAL to it), the name is taken first (mkdir(2) or
// link(2)) and the source moved onto what was taken. Reached here as in test/sanity/shared-put-back.test.ts: a child process whose
// renameat2 a seccomp filter answers with EINVAL (old-seccomp.ts), and swap-hook.ts to act just before the rename(2) that follows.
describe("renameNoReplace on a file system without RENAME_NOREPLACE", () => {
  let dir: string;
  beforeEach(async () => (dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-rename-"))));
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));
  const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

  /** Run the `form` of the rename from `from` to `to` in a child without renameat2, `script` run just before its rename(2): its answer. */
  function renameWithout(form: "async" | "sync", from: string, to: string, script: string): string {
    const swapFile = path.join(dir, "swap");
    // The async form renames with fs.promises.rename (the hook's "move"), the sync form with renameSync ("rename").
    writeFileSync(swapFile, `${form === "async" ? "move" : "rename"}\n${script}\n`);
    const code = `const m = require(${JSON.stringify(require.resolve("../../src/storage/rename-no-replace"))});
      const [from, to] = ${JSON.stringify([from, to])};
      Promise.resolve()
        .then(() => (${JSON.stringify(form)} === "sync" ? m.renameNoReplaceSync(from, to) : m.renameNoReplace(from, to).then(() => "renamed")))
        .then((r) => console.log(r), (e) => console.log(e.code === "EEXIST" ? "exists" : e.code));`;
    const env = swapEnv(swapFile, oldSeccompEnv(["renameat2"]));
    return execFileSync(process.execPath, ["-e", code], { env, encoding: "utf8" }).trim();
  }

  for (const form of ["async", "sync"] as const) {
    for (const kind of ["directory", "file"] as const) {
      it(`${form}: never replaces ${kind === "directory" ? "an empty directory" : "a file"} made at the name just before the rename`, function () {
        if (!filterWorksHere) this.skip();
        const [from, to, made] = [path.join(dir, "mine"), path.join(dir, "theirs"), path.join(dir, "made")];
        if (kind === "directory") {
          mkdirSync(from);
          writeFileSync(path.join(from, "data"), "mine");
        } else writeFileSync(from, "mine");
        // Someone takes the name in that moment, if they can, and notes which entry they made there.
        const take = kind === "directory" ? `mkdir ${shellQuote(to)}` : `(set -C; echo theirs > ${shellQuote(to)})`;
        const answer = renameWithout(form, from, to, `if ${take}; then stat -c %i ${shellQuote(to)} > ${shellQuote(made)}; fi`);
        const ours = kind === "directory" ? (p: string) => path.join(p, "data") : (p: string) => p;
        if (existsSync(made)) {
          assert.equal(answer, "exists");
          assert.equal(statSync(to).ino, Number(readFileSync(made, "utf8").trim()), "what they made at the name is still there");
          assert.equal(readFileSync(ours(from), "utf8"), "mine", "ours did not move");
        } else {
          assert.equal(answer, "renamed");
          assert.equal(readFileSync(ours(to), "utf8"), "mine");
          assert.equal(existsSync(from), false);
        }
      });
    }

    it(`${form}: a directory gone just before the rename leaves nothing at the name`, function () {
      if (!filterWorksHere) this.skip();
      const [from, to] = [path.join(dir, "mine"), path.join(dir, "theirs")];
      mkdirSync(from);
      assert.equal(renameWithout(form, from, to, `rmdir ${shellQuote(from)}`), "ENOENT");
      assert.equal(existsSync(path.join(dir, "swap")), false, "the rename went by rename(2), renameat2 being refused");
      assert.deepEqual(readdirSync(dir), [], "no empty directory of ours is left at the name");
    });
  }
});
