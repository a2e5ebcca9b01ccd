// Cloning sparse files (storage/sparse-file.ts) and giving an ext4 clone a
// UUID of its own (mount/ext4-uuid.ts): real files, real mkfs and e2fsck.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { constants as fsc, promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { cloneSparseFile, dataRanges } from "../../src/storage/sparse-file";
import { backupSuperblocks, newExt4Uuid, superblockChecksum } from "../../src/mount/ext4-uuid";
import { skipUnlessInstalled } from "../sanity/programs";

const MiB = 1024 ** 2;

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The UUID that dumpe2fs reads from the super-block at `superblock` (a block number; 0: the primary). */
function uuidAt(image: string, superblock = 0, blockSize = 4096): string {
  const args = superblock ? ["-o", `superblock=${superblock}`, "-o", `blocksize=${blockSize}`, "-h", image] : ["-h", image];
  const m = /^Filesystem UUID:\s+(\S+)$/m.exec(run("dumpe2fs", args).out);
  assert.ok(m, `dumpe2fs found no UUID in ${image} at block ${superblock}`);
  return m[1]!;
}

async function sha256(file: string): Promise<string> {
  return createHash("sha256").update(await fsp.readFile(file)).digest("hex");
}

describe("cloneSparseFile", () => {
  let dir: string;
  beforeEach(async () => (dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-clone-"))));
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));

  it("copies every byte, keeps the holes, and does not touch the source", async () => {
    const src = path.join(dir, "src.img");
    const fh = await fsp.open(src, "w");
    await fh.truncate(64 * MiB);
    await fh.write(Buffer.alloc(8192, 0x11), 0, 8192, 0);
    await fh.write(Buffer.alloc(MiB, 0x22), 0, MiB, 20 * MiB);
    await fh.write(Buffer.from("end"), 0, 3, 64 * MiB - 3); // data right at the end
    await fh.close();
    const before = await sha256(src);

    const dst = path.join(dir, "dst.img");
    const how = await cloneSparseFile(src, dst, { noCow: false });
    assert.ok(how === "copy" || how === "reflink");
    const st = await fsp.stat(dst);
    assert.equal(st.size, 64 * MiB);
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(st.blocks * 512 <= 2 * MiB, `the clone allocates ${st.blocks * 512} bytes: holes were filled`);
    assert.equal(await sha256(dst), before);
    assert.equal(await sha256(src), before);

    // Writing to the clone leaves the source as it was.
    await fsp.writeFile(dst, "changed", { flag: "r+" });
    assert.equal(await sha256(src), before);
  });

  it("copies a file of many data ranges, a few at a time, every byte in its place", async () => {
    const src = path.join(dir, "many.img");
    const fh = await fsp.open(src, "w");
    await fh.truncate(32 * MiB);
    for (let i = 0; i < 11; i++) await fh.write(Buffer.alloc(4096 * (i + 1), i + 1), 0, 4096 * (i + 1), i * 2 * MiB + 4096 * i);
    await fh.close();
    const dst = path.join(dir, "many-copy.img");
    await cloneSparseFile(src, dst, { noCow: false });
    assert.equal(await sha256(dst), await sha256(src));
    const st = await fsp.stat(dst);
    assert.ok(st.blocks * 512 <= MiB, `the clone allocates ${st.blocks * 512} bytes: holes were filled`);
  });

  it("finds the data ranges of a file, and none in a file of holes", async () => {
    const f = path.join(dir, "f");
    const fh = await fsp.open(f, "w");
    await fh.truncate(16 * MiB);
    await fh.write(Buffer.alloc(4096, 1), 0, 4096, 8 * MiB);
    assert.deepEqual(dataRanges(fh.fd, 16 * MiB, f), [[8 * MiB, 4096]]);
    await fh.close();
    const holes = await fsp.open(path.join(dir, "holes"), "w");
    await holes.truncate(MiB);
    assert.deepEqual(dataRanges(holes.fd, MiB, "holes"), []);
    await holes.close();
  });

  it("hands the new file, open for reading and writing, to finish before it is closed; again and again", async () => {
    const src = path.join(dir, "src");
    const fh = await fsp.open(src, "w");
    await fh.truncate(4 * MiB);
    await fh.write(Buffer.from("template"), 0, 8, MiB);
    await fh.close();
    // More than one clone from one file system: on one that cannot reflink,
    // the first clone learns so and the next ones copy at once.
    for (const n of [1, 2, 3]) {
      const dst = path.join(dir, `dst${n}`);
      let seen = "";
      await cloneSparseFile(src, dst, {
        noCow: false,
        finish: async (fd) => {
          const buf = Buffer.alloc(8);
          await new Promise<void>((resolve, reject) => fs.read(fd, buf, 0, 8, MiB, (err) => (err ? reject(err) : resolve())));
          seen = buf.toString();
          await new Promise<void>((resolve, reject) => fs.write(fd, `clone ${n}`, 0, (err) => (err ? reject(err) : resolve())));
        },
      });
      assert.equal(seen, "template");
      const got = await fsp.readFile(dst);
      assert.equal(got.length, 4 * MiB);
      assert.equal(got.subarray(0, 7).toString(), `clone ${n}`);
      assert.equal(got.subarray(MiB, MiB + 8).toString(), "template");
    }
    assert.deepEqual((await fsp.readFile(src)).subarray(0, 7), Buffer.alloc(7), "the source was written to");
  });

  it("reports what finish throws", async () => {
    const src = path.join(dir, "src");
    await fsp.writeFile(src, "a");
    await assert.rejects(
      cloneSparseFile(src, path.join(dir, "dst"), {
        noCow: false,
        finish: async () => {
          throw new Error("finish failed");
        },
      }),
      /finish failed/,
    );
  });

  it("refuses to overwrite an existing file", async () => {
    const src = path.join(dir, "src");
    const dst = path.join(dir, "dst");
    await fsp.writeFile(src, "a");
    await fsp.writeFile(dst, "b");
    await assert.rejects(cloneSparseFile(src, dst, { noCow: false }), /EEXIST/);
    assert.equal(await fsp.readFile(dst, "utf8"), "b");
  });
});

describe("newExt4Uuid", () => {
  let dir: string;
  beforeEach(async () => (dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-uuid-"))));
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));

  async function mkfs(name: string, bytes: number, extra: string[] = []): Promise<string> {
    const image = path.join(dir, name);
    await fsp.writeFile(image, "");
    await fsp.truncate(image, bytes);
    const r = run("mkfs.ext4", ["-q", "-F", "-m", "0", ...extra, image]);
    assert.equal(r.status, 0, r.out);
    return image;
  }

  it("computes the super-block checksum mke2fs wrote", async function () {
    skipUnlessInstalled(this, "mkfs.ext4");
    const image = await mkfs("a.img", 64 * MiB);
    const fh = await fsp.open(image, fsc.O_RDONLY);
    const sb = Buffer.alloc(1024);
    await fh.read(sb, 0, 1024, 1024);
    await fh.close();
    assert.equal(superblockChecksum(sb), sb.readUInt32LE(0x3fc));
  });

  for (const size of [64 * MiB, 1024 * MiB]) {
    it(`gives a ${size / MiB} MiB metadata_csum_seed file system a new UUID, in its primary and backup super-blocks; e2fsck finds it clean`, async function () {
      skipUnlessInstalled(this, "mkfs.ext4", "e2fsck");
      const image = await mkfs("seeded.img", size, ["-O", "metadata_csum_seed"]);
      const old = uuidAt(image);
      assert.equal(await newExt4Uuid(image), true);
      const uuid = uuidAt(image);
      assert.notEqual(uuid, old);
      assert.match(uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const fsck = run("e2fsck", ["-fn", image]);
      assert.equal(fsck.status, 0, fsck.out);
      assert.equal(run("blkid", ["-p", "-o", "value", "-s", "UUID", image]).out.trim(), uuid);
      // Every backup super-block says the same (dumpe2fs reads one when told where).
      const fh = await fsp.open(image, fsc.O_RDONLY);
      const sb = Buffer.alloc(1024);
      await fh.read(sb, 0, 1024, 1024);
      await fh.close();
      const blockSize = 1024 << sb.readUInt32LE(0x18);
      const backups = backupSuperblocks(sb);
      assert.ok(backups.length >= 2, `a ${size / MiB} MiB file system has backups (${backups.length})`);
      for (const at of backups) assert.equal(uuidAt(image, at / blockSize, blockSize), uuid, `backup at byte ${at}`);
    });
  }

  it("leaves a file system without metadata_csum_seed alone (its checksums are seeded with the UUID)", async function () {
    skipUnlessInstalled(this, "mkfs.ext4");
    const image = await mkfs("plain.img", 8 * MiB, ["-O", "^metadata_csum_seed"]);
    const before = await sha256(image);
    assert.equal(await newExt4Uuid(image), false);
    assert.equal(await sha256(image), before);
  });
});
