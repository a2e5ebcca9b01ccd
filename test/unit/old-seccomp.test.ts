// The test filter that makes a process run as under an older container runtime
// (test/sanity/old-seccomp.ts): statx, openat2, fanotify_init, statmount and listmount fail
// with EPERM, everything else works.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { filterWorksHere, oldSeccompEnv } from "../sanity/old-seccomp";

describe("the old-seccomp test filter", () => {
  it("refuses statx, openat2 and the mount-event calls with EPERM in the process it is preloaded into, and nothing else", function () {
    if (!filterWorksHere) this.skip();
    const script = `const koffi = require(${JSON.stringify(require.resolve("koffi"))});
      const libc = koffi.load("libc.so.6");
      const statx = libc.func("int statx(int, const char *, int, unsigned int, _Out_ uint8_t *)");
      const openat2 = libc.func("long syscall(long, int, const char *, void *, size_t)");
      const fanotifyInit = libc.func("int fanotify_init(unsigned int, unsigned int)");
      const mountCall = libc.func("long syscall(long, uint8_t *, _Out_ uint8_t *, unsigned long, unsigned int)");
      const errno = (rc) => (rc === 0 || rc > 0 ? 0 : koffi.errno());
      const how = Buffer.alloc(24); how.writeBigUInt64LE(0o10000000n, 0); // O_PATH
      const req = Buffer.alloc(32); req.writeUInt32LE(32, 0); req.writeBigUInt64LE(0xffffffffffffffffn, 8); // listmount from the root
      const out = {
        statx: errno(statx(-100, "/", 0, 0x7ff, Buffer.alloc(256))),
        openat2: errno(openat2(437, -100, "/", how, 24)),
        fanotifyInit: errno(fanotifyInit(0, 0)) === 1,
        listmount: errno(mountCall(458, req, Buffer.alloc(64), 8, 0)) === 1,
        statmount: errno(mountCall(457, req, Buffer.alloc(1024), 1024, 0)) === 1,
      };
      require("node:fs").readdirSync("/");
      out.stat = require("node:fs").statSync("/").isDirectory();
      console.log(JSON.stringify(out));`;
    const run = (env: NodeJS.ProcessEnv) => JSON.parse(execFileSync(process.execPath, ["-e", script], { env, encoding: "utf8" })) as Record<string, unknown>;
    // (Unfiltered, the mount-event calls may still fail, on an older kernel, but not with EPERM: this process is root.)
    assert.deepEqual(run(process.env), { statx: 0, openat2: 0, fanotifyInit: false, listmount: false, statmount: false, stat: true });
    assert.deepEqual(run(oldSeccompEnv()), { statx: 1, openat2: 1, fanotifyInit: true, listmount: true, statmount: true, stat: true });
  });
});
