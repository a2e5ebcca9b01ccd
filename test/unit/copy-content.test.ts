// The one copy path: image/block files are copied sparsely; kinds that do not match are refused.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Code } from "../../src/csi/errors";
import { copyContent, layoutOf } from "../../src/storage/copy-content";
import { mountFs, unmount } from "../../src/mount/syscalls";

const MS_RDONLY = 0x1;

const MiB = 1024 ** 2;

describe("copyContent", () => {
  let dir: string;
  beforeEach(async () => (dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-copy-"))));
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));
  // Volumes in use are held still for the copy (hold-still.ts); these images are mounted nowhere.
  const opts = () => ({ viewsDir: dir, hold: { markersDir: dir } });

  /** A 256 MiB sparse file with 1 MiB of data at 0 and at 128 MiB, like a fresh file system image. */
  async function sparseImage(file: string): Promise<Buffer> {
    const data = Buffer.alloc(MiB, 0x5a);
    const fh = await fsp.open(file, "w", 0o640);
    await fh.truncate(256 * MiB);
    await fh.write(data, 0, MiB, 0);
    await fh.write(data, 0, MiB, 128 * MiB);
    await fh.close();
    return data;
  }

  for (const layout of ["image", "block"] as const) {
    it(`copies a sparse ${layout} file with its holes, bytes and mode`, async () => {
      const src = path.join(dir, "src.img");
      const dst = path.join(dir, "dst.img");
      const data = await sparseImage(src);
      await copyContent({ path: src, layout, live: true }, dst, opts());
      const st = await fsp.stat(dst);
      assert.equal(st.size, 256 * MiB);
      assert.equal(st.mode & 0o777, 0o640);
      assert.ok(st.blocks * 512 <= 4 * MiB, `the copy allocates ${st.blocks * 512} bytes; the holes were filled`);
      const fh = await fsp.open(dst, "r");
      const at = async (pos: number) => (await fh.read(Buffer.alloc(MiB), 0, MiB, pos)).buffer;
      assert.ok((await at(0)).equals(data));
      assert.ok((await at(128 * MiB)).equals(data));
      assert.ok((await at(64 * MiB)).equals(Buffer.alloc(MiB)));
      await fh.close();
    });
  }

  it("refuses to copy a live image without the means to hold it still", async () => {
    const src = path.join(dir, "src.img");
    await sparseImage(src);
    await assert.rejects(copyContent({ path: src, layout: "image", live: true }, path.join(dir, "dst.img"), { viewsDir: dir }), /without holding it still/);
  });

  it("replaces an existing file at the destination", async () => {
    const src = path.join(dir, "src.img");
    const dst = path.join(dir, "dst.img");
    await sparseImage(src);
    await fsp.writeFile(dst, "old");
    await copyContent({ path: src, layout: "image", live: false }, dst, opts());
    assert.equal((await fsp.stat(dst)).size, 256 * MiB);
  });

  it("into a read-only file system answers FAILED_PRECONDITION naming it, as the driver's own calls answer EROFS", async () => {
    const src = path.join(dir, "src.img");
    await sparseImage(src);
    const ro = path.join(dir, "ro");
    await fsp.mkdir(ro);
    mountFs("csi-lab-copy-ro", ro, "tmpfs", MS_RDONLY, "size=1m");
    try {
      const err = (await copyContent({ path: src, layout: "image", live: false }, path.join(ro, "dst.img"), opts()).then(
        () => undefined,
        (e: unknown) => e,
      )) as { code?: number; message?: string } | undefined;
      assert.equal(err?.code, Code.FAILED_PRECONDITION, String(err?.message));
      assert.match(String(err?.message), /read-only.*Read-only file system/);
    } finally {
      unmount(ro);
    }
  });

  it("refuses a tree into a file and a file into a directory (INVALID_ARGUMENT)", async () => {
    const tree = path.join(dir, "tree");
    const file = path.join(dir, "file.img");
    await fsp.mkdir(tree);
    await fsp.writeFile(file, "x");
    await assert.rejects(copyContent({ path: tree, layout: "dir", live: false }, file, opts()), (e: { code: number }) => e.code === Code.INVALID_ARGUMENT);
    await assert.rejects(copyContent({ path: file, layout: "image", live: false }, tree, opts()), (e: { code: number }) => e.code === Code.INVALID_ARGUMENT);
  });

  it("refuses a source that is not what its layout says (FAILED_PRECONDITION)", async () => {
    const link = path.join(dir, "link");
    await fsp.symlink("/etc", link);
    await assert.rejects(copyContent({ path: link, layout: "dir", live: false }, path.join(dir, "out"), opts()), (e: { code: number }) => e.code === Code.FAILED_PRECONDITION);
    await assert.rejects(copyContent({ path: dir, layout: "block", live: false }, path.join(dir, "out"), opts()), (e: { code: number }) => e.code === Code.FAILED_PRECONDITION);
  });

  it("layoutOf defaults to dir for records without a layout", () => {
    assert.equal(layoutOf({}), "dir");
    assert.equal(layoutOf({ layout: "image" }), "image");
    assert.equal(layoutOf({ layout: "block" }), "block");
    assert.equal(layoutOf({ layout: "weird" }), "dir");
  });
});
