// CsiError.from: thrown things become CSI statuses with safe messages.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mountFs, unmount } from "../../src/mount/syscalls";

const MS_RDONLY = 0x1;
import { CsiError, Code } from "../../src/csi/errors";

describe("CsiError.from", () => {
  it("keeps a CsiError as it is", () => {
    const e = new CsiError(Code.NOT_FOUND, "gone");
    assert.equal(CsiError.from(e), e);
  });

  it("maps errno values to CSI codes, naming the syscall", async () => {
    const full = Object.assign(new Error("x"), { code: "ENOSPC", syscall: "write" });
    assert.equal(CsiError.from(full).code, Code.RESOURCE_EXHAUSTED);
  });

  it("names the file system that is full: the directory of the path the call was given", async function () {
    // A real ENOSPC: a tmpfs of a few inodes, filled.
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-enospc-"));
    mountFs("csi-lab-enospc", dir, "tmpfs", 0, "size=1m,nr_inodes=8");
    try {
      let err: unknown;
      for (let i = 0; i < 16 && !err; i++) err = await fsp.mkdir(path.join(dir, `d${i}`)).then(() => undefined, (e: unknown) => e);
      const c = CsiError.from(err);
      assert.equal(c.code, Code.RESOURCE_EXHAUSTED);
      assert.equal(c.message, `ENOSPC during mkdir: no space left on the device (the file system holding ${dir})`);
    } finally {
      unmount(dir);
      await fsp.rmdir(dir);
    }
  });

  it("names a read-only file system the same way", async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-erofs-"));
    mountFs("csi-lab-erofs", dir, "tmpfs", MS_RDONLY, "size=1m");
    try {
      const c = CsiError.from(await fsp.mkdir(path.join(dir, "d")).then(() => undefined, (e: unknown) => e));
      assert.equal(c.code, Code.FAILED_PRECONDITION);
      assert.equal(c.message, `EROFS during mkdir: read-only file system (the file system holding ${dir})`);
    } finally {
      unmount(dir);
      await fsp.rmdir(dir);
    }
  });

  // Each RPC's NOT_FOUND and ALREADY_EXISTS have a meaning in the spec (no such volume, source or node; a volume of
  // that name made differently), which a CO acts on; a file the driver itself expected, gone or there, is not one.
  it("makes a bare ENOENT, EEXIST or ENOTDIR INTERNAL, not NOT_FOUND, ALREADY_EXISTS or FAILED_PRECONDITION", async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-errno-"));
    try {
      await fsp.writeFile(path.join(dir, "f"), "");
      // Each call made only when its turn comes: made at once, the later ones' rejections would wait unhandled meanwhile.
      const cases: [string, () => Promise<unknown>][] = [
        ["ENOENT during open: no such file or directory", () => fsp.readFile(path.join(dir, "missing"))],
        ["EEXIST during mkdir: already exists", () => fsp.mkdir(path.join(dir, "f"))],
        ["ENOTDIR during mkdir: not a directory", () => fsp.mkdir(path.join(dir, "f", "d"))],
      ];
      for (const [text, call] of cases) {
        const c = CsiError.from(await call().then(() => undefined, (e: unknown) => e));
        assert.equal(c.code, Code.INTERNAL, c.message);
        assert.match(c.message, new RegExp(`^the driver met what it did not expect \\(${text}\\)`));
      }
    } finally {
      await fsp.rm(dir, { recursive: true });
    }
  });

  it("turns anything else into INTERNAL without leaking its message or stack", () => {
    const c = CsiError.from(new TypeError("cannot read properties of undefined (reading 'secret')"));
    assert.equal(c.code, Code.INTERNAL);
    assert.doesNotMatch(c.message, /secret|TypeError|\n/);
    assert.ok(c.cause instanceof TypeError, "the original stays available to the log");
  });
});
