// Share agents: file operations on shares in helper processes, with a deadline.
import assert from "node:assert/strict";
import { Code } from "../../src/csi/errors";
import { ShareError, ShareIo } from "../../src/backends/nfs/share-io";

describe("share agents", () => {
  it("answer probes and statfs, pass errno codes back, and are cut off at the deadline and replaced", async () => {
    const io = new ShareIo(2000);
    assert.deepEqual((await io.run<{ kind: string }>("probe", { path: "/" }, "share /")).kind, "dir");
    assert.ok((await io.run<{ totalBytes: number }>("statfs", { path: "/" }, "share /")).totalBytes > 0);
    await assert.rejects(io.run("probe", { path: "/no/such/path" }, "share /"), (e: ShareError) => e instanceof ShareError && e.code === "ENOENT");
    // An agent that never answers (a real process, blocked) costs its caller the deadline, nothing more.
    await assert.rejects(io.run("hang", {}, "share /stuck", 300), (e: { code: number; message: string }) => e.code === Code.UNAVAILABLE && /share \/stuck did not answer within 0\.3 s/.test(e.message));
    assert.equal((await io.run<{ kind: string }>("probe", { path: "/" }, "share /")).kind, "dir");
  });
});
