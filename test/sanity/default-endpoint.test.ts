// The embedded defaults, as README's first command runs them: no --endpoint
// and no --root, so the socket is .csi-lab/csi.sock and the data
// .csi-lab/root in the current directory. docs/security.md: the socket is
// owner-only (0600) and the directory the driver makes for it is 0700.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, promises as fsp, statSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const BIN = path.resolve(__dirname, "../../../bin/csi-lab.js");

describe("The embedded default endpoint", () => {
  let dir: string;
  let proc: ChildProcess | undefined;
  let exited: Promise<number | null>;

  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-default-"));
  });

  afterEach(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      await exited;
    }
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it("makes .csi-lab owner-only (0700), its socket 0600, and removes the socket at SIGTERM", async () => {
    const logs: string[] = [];
    proc = spawn(process.execPath, [BIN, "driver", "--kubelet-dir", path.join(dir, "kubelet")], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
    exited = new Promise((resolve) => proc!.on("exit", (code) => resolve(code)));
    proc.stderr!.on("data", (chunk: Buffer) => logs.push(chunk.toString()));
    const socket = path.join(dir, ".csi-lab", "csi.sock");
    for (const end = Date.now() + 20_000; !logs.join("").includes('"msg":"ready"'); await new Promise((r) => setTimeout(r, 20))) {
      if (Date.now() > end || proc.exitCode !== null) assert.fail(`the driver did not become ready:\n${logs.join("")}`);
    }
    assert.ok(existsSync(path.join(dir, ".csi-lab", "root", "volumes")), "the data directory is .csi-lab/root");
    assert.equal((statSync(path.join(dir, ".csi-lab")).mode & 0o777).toString(8), "700", "the socket's directory");
    assert.equal((statSync(socket).mode & 0o777).toString(8), "600", "the socket");
    proc.kill("SIGTERM");
    assert.equal(await exited, 0);
    assert.equal(existsSync(socket), false, "socket removed");
  });
});
