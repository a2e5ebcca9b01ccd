// The test filter that makes a process run as under an older container runtime
// (test/sanity/old-seccomp.ts): statx and openat2 fail with EPERM, everything else works.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { filterWorksHere, oldSeccompEnv } from "../sanity/old-seccomp";

describe("the old-seccomp test filter", () => {
  it("refuses statx and openat2 with EPERM in the process it is preloaded into, and nothing else", function () {
    if (!filterWorksHere) this.skip();
    const script = `const koffi = require(${JSON.stringify(require.resolve("koffi"))});
      const libc = koffi.load("libc.so.6");
      const statx = libc.func("int statx(int, const char *, int, unsigned int, _Out_ uint8_t *)");
      const openat2 = libc.func("long syscall(long, int, const char *, void *, size_t)");
      const errno = (rc) => (rc === 0 || rc > 0 ? 0 : koffi.errno());
      const how = Buffer.alloc(24); how.writeBigUInt64LE(0o10000000n, 0); // O_PATH
      const out = { statx: errno(statx(-100, "/", 0, 0x7ff, Buffer.alloc(256))), openat2: errno(openat2(437, -100, "/", how, 24)) };
      require("node:fs").readdirSync("/");
      out.stat = require("node:fs").statSync("/").isDirectory();
      console.log(JSON.stringify(out));`;
    const run = (env: NodeJS.ProcessEnv) => JSON.parse(execFileSync(process.execPath, ["-e", script], { env, encoding: "utf8" })) as Record<string, unknown>;
    assert.deepEqual(run(process.env), { statx: 0, openat2: 0, stat: true });
    assert.deepEqual(run(oldSeccompEnv()), { statx: 1, openat2: 1, stat: true });
  });
});
