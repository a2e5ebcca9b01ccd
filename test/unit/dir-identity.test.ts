// Which directory a path holds (src/storage/dir-identity.ts): an identity that stays while the
// directory is renamed, chmodded and filled, and that a directory made later in the same inode
// never has — with statx, and with statx refused (then the inode's generation tells them apart).
// Real directories in a temporary directory on this machine's disk (ext4 here).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { closeSync, constants as fsc, openSync } from "node:fs";
import {
  birthTimeNs,
  directoryAt,
  dirIdentity,
  generationOf,
  identityAt,
  identityParts,
  isSameDirectory,
  lookAtData,
  type DirIdentityParts,
} from "../../src/storage/dir-identity";
import { filterWorksHere, oldSeccompEnv } from "../sanity/old-seccomp";

const ino = async (p: string) => (await fsp.lstat(p, { bigint: true })).ino;

/** Make `<dir>/a`, note its identity, rename, chmod and fill it, then replace it by a new `a`; the identities seen. */
async function lifeOfADirectory(dir: string, identify: (p: string) => Promise<string>) {
  const a = path.join(dir, "a");
  await fsp.mkdir(a);
  const made = await identify(a);
  await new Promise((r) => setTimeout(r, 20)); // past the kernel clock's tick, so a change time would move
  const b = path.join(dir, "b");
  await fsp.rename(a, b);
  await fsp.chmod(b, 0o700);
  await fsp.writeFile(path.join(b, "entry"), "x");
  const changed = await identify(b);
  const firstIno = await ino(b);
  await fsp.rm(b, { recursive: true });
  // ext4 gives the freed inode to the next directory made: try a few times to get it.
  let again = "";
  for (let i = 0; i < 20; i++) {
    await fsp.mkdir(a);
    if ((await ino(a)) === firstIno) {
      again = await identify(a);
      break;
    }
    await fsp.rename(a, path.join(dir, `other-${i}`));
  }
  return { made, changed, again, sameInode: again !== "" };
}

describe("dirIdentity", () => {
  let dir: string;
  beforeEach(async () => (dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-dirid-"))));
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));

  it("stays while a directory is renamed, chmodded and filled; a new directory in its inode has another", async function () {
    const life = await lifeOfADirectory(dir, async (p) => dirIdentity(p, await ino(p)).identity);
    assert.equal(life.changed, life.made);
    if (!life.sameInode) this.skip(); // ext4 (this machine's /tmp) reuses the inode at once; another file system may not
    assert.notEqual(life.again, life.made);
  });

  it("with statx refused: the same, by the inode's generation", async function () {
    if (!filterWorksHere) this.skip();
    // A child process under the filter (test/sanity/old-seccomp.ts) does the looking.
    const script = `const { dirIdentity } = require(${JSON.stringify(require.resolve("../../src/storage/dir-identity"))});
      const { lstatSync } = require("node:fs");
      const p = process.argv[1]; const st = lstatSync(p, { bigint: true });
      console.log(JSON.stringify({ ...dirIdentity(p, st.ino), btime: String(st.birthtimeNs), ctime: String(st.ctimeNs) }));`;
    const seen: { identity: string; v2: string; btime: string; ctime: string }[] = [];
    const identify = async (p: string) => {
      const out = JSON.parse(execFileSync(process.execPath, ["-e", script, p], { env: oldSeccompEnv(), encoding: "utf8" })) as (typeof seen)[number];
      seen.push(out);
      return out.identity;
    };
    const life = await lifeOfADirectory(dir, identify);
    assert.equal(seen[0]!.btime, seen[0]!.ctime, "under the filter, Node's birth time is the change time");
    assert.match(life.made, /^\d+:g\d+$/, "the generation, not a birth time");
    assert.equal(life.changed, life.made);
    if (!life.sameInode) this.skip();
    assert.notEqual(life.again, life.made);
  });

  it("v2 is the inode and birth time, as markers of version 2 recorded them", async () => {
    const a = path.join(dir, "a");
    await fsp.mkdir(a);
    const st = await fsp.lstat(a, { bigint: true });
    assert.equal(dirIdentity(a, st.ino).v2, `${st.ino}:${st.birthtimeNs}`);
  });

  it("refuses to measure a path whose file was replaced since the caller saw it (EAGAIN)", async () => {
    const a = path.join(dir, "a");
    await fsp.mkdir(a);
    const first = await ino(a);
    await fsp.rename(a, path.join(dir, "away"));
    await fsp.mkdir(a);
    assert.notEqual(await ino(a), first);
    assert.throws(() => birthTimeNs(a, first), { code: "EAGAIN" });
    assert.throws(() => dirIdentity(a, first), { code: "EAGAIN" });
  });

  it("names the errno when there is nothing to look at, and does not follow a symlink", async () => {
    assert.throws(() => birthTimeNs(path.join(dir, "missing"), 1n), { code: "ENOENT" });
    const link = path.join(dir, "link");
    await fsp.symlink(dir, link);
    const linkIno = await ino(link);
    assert.equal(typeof birthTimeNs(link, linkIno), "bigint", "the link itself was measured");
    assert.throws(() => generationOf(link, linkIno), { code: /^(ELOOP|ENOTDIR)$/ }, "not opened through the link");
  });
});

// A hostPath volume's record keeps its directory's identity part by part, for years: a driver
// restarted under a seccomp profile that refuses statx must still know its own directories.
describe("identityParts", () => {
  let dir: string;
  beforeEach(async () => (dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-dirid-"))));
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));

  const partsOf = (p: string): DirIdentityParts => {
    const fd = openSync(p, fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      return identityParts(fd, p);
    } finally {
      closeSync(fd);
    }
  };

  /** What a process under the filter (no statx) says of `p` against `parts`: through a descriptor, and by name. */
  const judgedWithoutStatx = (p: string, parts: DirIdentityParts) => {
    const script = `const m = require(${JSON.stringify(require.resolve("../../src/storage/dir-identity"))});
      const fs = require("node:fs");
      const [p, parts] = [process.argv[1], JSON.parse(process.argv[2])];
      const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
      console.log(JSON.stringify({ byFd: m.isSameDirectory(fd, parts, p), byName: m.directoryAt(p, parts), parts: m.identityParts(fd, p) }));`;
    return JSON.parse(execFileSync(process.execPath, ["-e", script, p, JSON.stringify(parts)], { env: oldSeccompEnv(), encoding: "utf8" })) as {
      byFd: boolean;
      byName: string;
      parts: DirIdentityParts;
    };
  };

  it("kept part by part: with statx refused later, the generation still tells the directory from a new one in its inode", async function () {
    if (!filterWorksHere) this.skip();
    const a = path.join(dir, "a");
    await fsp.mkdir(a);
    const parts = partsOf(a);
    assert.ok(parts.born !== undefined && parts.generation !== undefined, "this machine's /tmp keeps both (ext4)");
    const b = path.join(dir, "b");
    await fsp.rename(a, b);
    const seen = judgedWithoutStatx(b, parts);
    assert.equal(seen.parts.born, undefined, "under the filter there is no birth time");
    assert.deepEqual([seen.byFd, seen.byName], [true, "same"], "renamed, it is the same directory");
    assert.equal(directoryAt(a, parts), "absent");

    await fsp.rm(b, { recursive: true });
    for (let i = 0; i < 20; i++) {
      await fsp.mkdir(a);
      if (String(await ino(a)) === parts.ino) break;
      await fsp.rename(a, path.join(dir, `other-${i}`));
    }
    if (String(await ino(a)) !== parts.ino) this.skip(); // ext4 reuses the inode at once; another file system may not
    assert.deepEqual(Object.values(judgedWithoutStatx(a, parts)).slice(0, 2), [false, "other"], "a new directory in its inode is another");
    const fd = openSync(a, fsc.O_RDONLY | fsc.O_DIRECTORY);
    try {
      assert.equal(isSameDirectory(fd, parts, a), false, "and so it is with statx");
    } finally {
      closeSync(fd);
    }
  });
});

// An image volume's record keeps its image file's identity the same way (identityAt with kind "file").
describe("identityAt, of a regular file", () => {
  let dir: string;
  beforeEach(async () => (dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-dirid-"))));
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));

  const partsOf = (p: string): DirIdentityParts => {
    const fd = openSync(p, fsc.O_RDONLY);
    try {
      return identityParts(fd, p);
    } finally {
      closeSync(fd);
    }
  };

  it("stays while the file is renamed and written; another file, a directory, a symlink are other; nothing is absent", async () => {
    const a = path.join(dir, "a");
    await fsp.writeFile(a, "image");
    const parts = partsOf(a);
    const b = path.join(dir, "b");
    await fsp.rename(a, b);
    await fsp.appendFile(b, " grown");
    assert.equal(identityAt(b, parts, "file"), "same");
    assert.deepEqual(lookAtData(b, parts, "file"), { verdict: "same", size: 11 }, "with the size the same look saw");
    assert.equal(identityAt(b, parts, "dir"), "other", "a file is not the directory a record names");
    assert.equal(identityAt(a, parts, "file"), "absent");

    await fsp.writeFile(a, "someone else's");
    assert.equal(identityAt(a, parts, "file"), "other");
    await fsp.rm(a);
    await fsp.symlink(b, a);
    assert.equal(identityAt(a, parts, "file"), "other", "a symlink to the very file is not followed");
  });

  it("a new file in the same inode is another", async function () {
    const a = path.join(dir, "a");
    await fsp.writeFile(a, "image");
    const parts = partsOf(a);
    await fsp.rm(a);
    for (let i = 0; i < 20; i++) {
      await fsp.writeFile(a, "new");
      if (String(await ino(a)) === parts.ino) break;
      await fsp.rename(a, path.join(dir, `other-${i}`));
    }
    if (String(await ino(a)) !== parts.ino) this.skip(); // ext4 reuses the inode at once; another file system may not
    assert.equal(identityAt(a, parts, "file"), "other");
  });
});
