// CsiError.from: thrown things become CSI statuses with safe messages.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import { CsiError, Code } from "../../src/csi/errors";

describe("CsiError.from", () => {
  it("keeps a CsiError as it is", () => {
    const e = new CsiError(Code.NOT_FOUND, "gone");
    assert.equal(CsiError.from(e), e);
  });

  it("maps errno values to CSI codes, naming the syscall", async () => {
    const err = await fsp.readFile("/nonexistent/file").catch((e: unknown) => e);
    const c = CsiError.from(err);
    assert.equal(c.code, Code.NOT_FOUND);
    assert.match(c.message, /ENOENT during open: no such file or directory/);
    const full = Object.assign(new Error("x"), { code: "ENOSPC", syscall: "write" });
    assert.equal(CsiError.from(full).code, Code.RESOURCE_EXHAUSTED);
  });

  it("turns anything else into INTERNAL without leaking its message or stack", () => {
    const c = CsiError.from(new TypeError("cannot read properties of undefined (reading 'secret')"));
    assert.equal(c.code, Code.INTERNAL);
    assert.doesNotMatch(c.message, /secret|TypeError|\n/);
    assert.ok(c.cause instanceof TypeError, "the original stays available to the log");
  });
});
