// The driver's command line: every bad flag is one line and exit status 2, before anything is
// created; help and version; who can reach the socket (0600, a group's 0660, TCP on loopback only).
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, promises as fsp, statSync } from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { mountFs, unmount } from "../../src/mount/syscalls";
import { MS } from "../../src/mount/options";
import { connect } from "../../src/client/csi-client";
import { destroyDriver, startDriver, type DriverProcess } from "./harness";

const BIN = path.resolve(__dirname, "../../../bin/csi-lab.js");

/** A driver's log (stderr) up to its "ready" line; rejects, with the log, if it exits first. */
function logUntilReady(proc: ChildProcess): Promise<string> {
  let log = "";
  return new Promise((resolve, reject) => {
    proc.stderr!.on("data", (c: Buffer) => {
      log += c.toString();
      if (log.includes('"msg":"ready"')) resolve(log);
    });
    proc.on("exit", (code) => reject(new Error(`exited ${code}: ${log}`)));
  });
}

function runDriver(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, "driver", ...args], { encoding: "utf8", timeout: 10_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("Driver flags", () => {
  let dir: string;
  beforeEach(async () => (dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-flags-"))));
  afterEach(async () => fsp.rm(dir, { recursive: true, force: true }));

  /** Flags that would work, with one of them replaced. */
  const flags = (over: Record<string, string | undefined> = {}): string[] => {
    const base: Record<string, string | undefined> = {
      "--endpoint": `unix://${dir}/csi.sock`,
      "--root": `${dir}/root`,
      "--kubelet-dir": `${dir}/kubelet`,
      "--node-id": "n1",
      ...over,
    };
    return Object.entries(base).flatMap(([k, v]) => (v === undefined ? [] : v === "" ? [k] : [k, v]));
  };

  /** A refused start: exit 2, one line naming the problem, and nothing made in the scratch directory. */
  function refused(args: string[], message: RegExp): void {
    const before = spawnSync("find", [dir], { encoding: "utf8" }).stdout;
    const r = runDriver(args);
    assert.equal(r.status, 2, `exit status, stderr: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(spawnSync("find", [dir], { encoding: "utf8" }).stdout, before, "nothing was created");
  }

  it("--root naming a file is refused in one line", async () => {
    await fsp.writeFile(path.join(dir, "file"), "");
    refused(flags({ "--root": path.join(dir, "file") }), /--root .*exists and is not a directory/);
  });

  it("--root under /proc or /sys, or a system directory, is refused at once", () => {
    for (const root of ["/proc/csi-root", "/sys/csi-root", "/etc", "/", "/usr/lib/csi"]) refused(flags({ "--root": root }), /--root .*(operating system|root of the file system|system directory)/);
  });

  it("--root on a read-only file system names EROFS", async () => {
    const ro = path.join(dir, "ro");
    await fsp.mkdir(ro);
    mountFs("tmpfs", ro, "tmpfs", MS.RDONLY, "size=1m");
    try {
      refused(flags({ "--root": path.join(ro, "root") }), /--root .*read-only file system/);
    } finally {
      unmount(ro, { detach: true });
    }
  });

  it("an endpoint whose directory does not exist is refused, and nothing is made for it", () => {
    refused(flags({ "--endpoint": `unix://${dir}/nonexistent-dir/x/s.sock` }), /socket's directory .*does not exist/);
    assert.equal(existsSync(path.join(dir, "nonexistent-dir")), false);
  });

  it("an invalid endpoint is refused before the root is created", () => {
    refused(flags({ "--endpoint": "carrier-pigeon://coop" }), /--endpoint: endpoint .* is neither/);
    assert.equal(existsSync(path.join(dir, "root")), false);
  });

  it("a TCP endpoint on every interface is refused without --allow-network-endpoint", () => {
    refused(flags({ "--endpoint": "tcp://0.0.0.0:10000" }), /binds loopback only.*--allow-network-endpoint/);
  });

  it("bad values of the other flags are refused, naming the flag", () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ "--log-level": "loud" }, /--log-level must be one of debug, info, warn, error/],
      [{ "--mode": "both" }, /--mode must be all, controller or node/],
      [{ "--max-volumes-per-node=-1": "" }, /--max-volumes-per-node must be a whole number/],
      [{ "--max-volumes-per-node": "-1" }, /argument is ambiguous/],
      [{ "--mount-timeout": "soon" }, /--mount-timeout must be a number of seconds/],
      [{ "--mount-timeout": "0x10" }, /--mount-timeout must be a number of seconds from 0.001 to 86400, not "0x10"/],
      [{ "--share-timeout": "0.0001" }, /--share-timeout must be a number of seconds/],
      [{ "--share-timeout": "1e3" }, /--share-timeout must be a number of seconds/],
      [{ "--share-timeout": "86400.5" }, /--share-timeout must be a number of seconds/],
      [{ "--root-lock-timeout": "forever" }, /--root-lock-timeout must be a number of seconds from 0 to 86400, not "forever"/],
      [{ "--root-lock-timeout=-1": "" }, /--root-lock-timeout must be a number of seconds from 0 to 86400/],
      [{ "--kubelet-dir": "/" }, /--kubelet-dir \/: it is the root of the file system/],
      [{ "--kubelet-dir": "/etc/kubelet" }, /--kubelet-dir .*belongs to the operating system/],
      [{ "--allow-share": "/" }, /--allow-share \/: it is the root of the file system/],
      [{ "--allow-share": "/etc" }, /--allow-share \/etc: .*operating system/],
      [{ "--allow-share": "server:relative" }, /--allow-share .*must be \/local\/path or server:\/export/],
      [{ "--mount-program": "/no/such/mount" }, /--mount-program \/no\/such\/mount: not an executable file/],
      [{ "--socket-group": "no-such-group-here" }, /--socket-group no-such-group-here: no such group/],
      [{ "--no-such-flag": "" }, /Unknown option '--no-such-flag'/],
    ];
    for (const [over, message] of cases) refused(flags(over), message);
  });

  it("a flag that takes one value, given twice, is refused: neither value is quietly dropped", () => {
    refused([...flags(), "--mode", "bogus", "--mode", "node"], /--mode is given twice \("bogus", then "node"\); give it once/);
    refused([...flags(), "--root", `${dir}/other`], /--root is given twice \(".*\/root", then ".*\/other"\)/);
    refused([...flags({ "--log-level": "info" }), "--log-level=debug"], /--log-level is given twice \("info", then "debug"\)/);
    assert.equal(existsSync(path.join(dir, "other")), false);
  });

  it("--root inside --kubelet-dir is refused: requests may point into the kubelet directory", () => {
    refused(flags({ "--root": `${dir}/kubelet/root` }), /--root .* is inside --kubelet-dir/);
  });

  it("driver --help lists every flag with its default and an example; --version prints the version", () => {
    const help = runDriver(["--help"]);
    assert.equal(help.status, 0);
    for (const f of ["--endpoint", "--root", "--kubelet-dir", "--allow-share", "--socket-group", "--allow-network-endpoint", "--log-level", "Example"]) {
      assert.ok(help.stdout.includes(f), `--help mentions ${f}`);
    }
    assert.equal(runDriver(["-h"]).stdout, help.stdout);
    const v = runDriver(["--version"]);
    assert.equal(v.status, 0);
    assert.match(v.stdout.trim(), /^\d+\.\d+\.\d+/);
  });

  it("a metrics address already in use stops the start: exit 1, one line, and no CSI socket left serving", async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const r = runDriver([...flags(), "--metrics-address", `127.0.0.1:${port}`, "--log-level", "warn"]);
      assert.equal(r.status, 1, `it ends (status ${r.status}), stderr: ${r.stderr}`);
      assert.match(r.stderr, /^csi-lab driver: .*EADDRINUSE.*$/m);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      assert.equal(existsSync(`${dir}/csi.sock`), false, "no CSI socket was left behind");
    } finally {
      taken.close();
    }
  });
});

describe("Who can reach the socket", () => {
  let d: DriverProcess | undefined;
  afterEach(async () => destroyDriver(d));

  it("the unix socket is the owner's only (0600)", async () => {
    d = await startDriver();
    assert.equal(statSync(d.socket).mode & 0o777, 0o600);
  });

  it("--socket-group opens it to one group (0660)", async () => {
    d = await startDriver({ extraArgs: ["--socket-group", "0"] });
    const st = statSync(d.socket);
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.gid, 0);
  });

  it("a TCP endpoint off loopback starts only with --allow-network-endpoint, and warns", async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-tcp-"));
    const proc = spawn(process.execPath, [BIN, "driver", "--endpoint", "tcp://0.0.0.0:0", "--allow-network-endpoint", "--root", `${dir}/root`, "--kubelet-dir", `${dir}/kubelet`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    try {
      const log = await logUntilReady(proc);
      assert.match(log, /"level":"warn","msg":"serving CSI on TCP: anyone who can reach this address/);
    } finally {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

describe("A node plugin that cannot mount", () => {
  it("says so at start-up, and Probe answers not ready with the reason", async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-nocap-"));
    const socket = path.join(dir, "csi.sock");
    // Root without CAP_SYS_ADMIN, as a container that is not privileged runs.
    const proc = spawn("setpriv", ["--bounding-set=-sys_admin", "--", process.execPath, BIN, "driver", "--endpoint", `unix://${socket}`, "--root", `${dir}/root`, "--kubelet-dir", `${dir}/kubelet`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    try {
      const log = await logUntilReady(proc);
      assert.match(log, /"msg":"cannot mount","problem":"this process lacks CAP_SYS_ADMIN/);
      const client = connect(`unix://${socket}`);
      try {
        assert.equal((await client.identity.probe({})).ready, false);
      } finally {
        client.close();
      }
    } finally {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
