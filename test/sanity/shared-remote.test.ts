// The NFS-export path of the shared backend, with mount(8) replaced by stand-ins:
// the command lines the driver builds, and a hung mount helper cut off at its deadline.
//
// This machine's kernel has no NFS client, so no real `mount -t nfs` runs here.
// The stand-in "fake-nfs" records its command line and serves server:/path
// by bind-mounting <scratch>/exports/<server>/<path>; "hang" never returns.
import assert from "node:assert/strict";
import { existsSync, promises as fsp, readFileSync } from "node:fs";
import * as path from "node:path";
import { Code, destroyDriver, expectCode, isMounted, literal, Mode, mountCapability, shellQuote, startDriver, uniqueName, type DriverProcess } from "./harness";
import { processAlive, until } from "./processes";

const RWX = Mode.MULTI_NODE_MULTI_WRITER;

async function writeScript(file: string, body: string): Promise<string> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, `#!/bin/bash\n${body}\n`, { mode: 0o755 });
  return file;
}

function fakeNfs(dir: string): string {
  return `echo "$*" >> ${shellQuote(path.join(dir, "mount.log"))}
if [ "$1" = "-t" ] && [ "$2" = "nfs" ]; then
  shift 2
  if [ "$1" = "-o" ]; then shift 2; fi
  server=\${1%%:*}; p=\${1#*:}
  # What mount.nfs says of an export path the server does not have (NFSv3's MNT3ERR_NOENT).
  case "$p" in /gone*) echo "mount.nfs: mounting $1 failed, reason given by server: No such file or directory" >&2; exit 32;; esac
  [ -d ${shellQuote(path.join(dir, "exports"))}"/$server$p" ] || { echo "mount.nfs: access denied by server while mounting $1" >&2; exit 32; }
  exec mount --bind ${shellQuote(path.join(dir, "exports"))}"/$server$p" "$2"
fi
exec mount "$@"`;
}

describe("Shared volumes on an NFS export (mount(8) stand-ins)", () => {
  let d: DriverProcess;
  let dir: string;
  before(async () => {
    d = await startDriver();
    dir = d.dir;
    const program = await writeScript(d.scratch("bin", "fake-nfs"), fakeNfs(dir));
    await fsp.mkdir(d.scratch("exports", "nfs.example.internal", "srv", "vols"), { recursive: true });
    await d.stop();
    d = await startDriver({ dir, extraArgs: ["--mount-program", program, "--allow-share", "nfs.example.internal:/srv/vols", "--allow-share", "nfs.example.internal:/not/exported", "--allow-share", "nfs.example.internal:/gone"] });
  });
  after(async () => destroyDriver(d));

  const params = { backend: "nfs", server: "nfs.example.internal", share: "/srv/vols" };
  const log = () => readFileSync(path.join(dir, "mount.log"), "utf8").trim().split("\n");

  it("the controller mounts the export into a working directory, makes the volume there, and unmounts it", async () => {
    const name = uniqueName("pvc");
    const v = (await d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability(RWX)], parameters: params })).volume!;
    assert.equal(v.volumeId, `nfs1:d:nfs.example.internal:srv,vols:${name}`);
    assert.equal(v.volumeContext!["csi-lab/server"], "nfs.example.internal");
    const line = log().at(-1)!;
    assert.match(line, new RegExp(`^-t nfs nfs\\.example\\.internal:/srv/vols ${literal(d.root)}/\\.shares/[0-9a-f]{16}\\.[0-9a-f]{6}$`));
    assert.ok((await fsp.stat(d.scratch("exports", "nfs.example.internal", "srv", "vols", name))).isDirectory());
    assert.deepEqual(await fsp.readdir(path.join(d.root, ".shares")), [], "the working mount is gone");
  });

  it("NodeStageVolume runs `mount -t nfs -o <StorageClass mountOptions> server:/share/subDir`, NodePublishVolume binds it", async () => {
    const name = uniqueName("pvc");
    const cap = mountCapability(RWX, ["nfsvers=4.1", "hard", "noexec"]);
    const v = (await d.client.controller.createVolume({ name, volumeCapabilities: [cap], parameters: params })).volume!;
    const stagingTargetPath = d.path(uniqueName("stage"));
    const targetPath = d.path(uniqueName("pod"));
    await d.client.node.nodeStageVolume({ volumeId: v.volumeId, volumeContext: v.volumeContext, stagingTargetPath, volumeCapability: cap });
    assert.equal(log().at(-1), `-t nfs -o hard,nfsvers=4.1,noexec nfs.example.internal:/srv/vols/${name} ${stagingTargetPath}`);
    await d.client.node.nodePublishVolume({ volumeId: v.volumeId, volumeContext: v.volumeContext, stagingTargetPath, targetPath, volumeCapability: cap, readonly: true });
    assert.deepEqual(log().slice(-2), [`--bind ${stagingTargetPath} ${targetPath}`, `-o remount,bind,noexec,ro ${targetPath}`]);
    await assert.rejects(fsp.writeFile(path.join(targetPath, "x"), "x"), { code: "EROFS" });
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath });
    assert.equal(await isMounted(stagingTargetPath), false);
    assert.equal(existsSync(targetPath), false);
  });

  it("an export the server refuses answers FAILED_PRECONDITION with mount.nfs's message", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability(RWX)], parameters: { ...params, share: "/not/exported" } }),
      Code.FAILED_PRECONDITION,
      /access denied by server/,
    );
  });

  // Not NOT_FOUND: to CreateVolume that says its content source does not exist (docs/nfs.md: a missing share is FAILED_PRECONDITION).
  it("an export path the server does not have answers FAILED_PRECONDITION with mount.nfs's message", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability(RWX)], parameters: { ...params, share: "/gone" } }),
      Code.FAILED_PRECONDITION,
      /mounting .*nfs\.example\.internal:\/gone failed: .*reason given by server: No such file or directory/,
    );
  });
});

describe("A mount helper that hangs", () => {
  let d: DriverProcess;
  let pidFile: string;
  before(async () => {
    d = await startDriver();
    const dir = d.dir;
    pidFile = path.join(dir, "hang.pid");
    const program = await writeScript(path.join(dir, "bin", "hang"), `echo $$ > ${shellQuote(pidFile)}\nexec sleep 1000`);
    await d.stop();
    d = await startDriver({ dir, extraArgs: ["--mount-program", program, "--mount-timeout", "1.5", "--allow-share", "nfs.example.internal:/srv/vols"] });
  });
  after(async () => destroyDriver(d));

  it("is cut off at its deadline: the RPC answers UNAVAILABLE, the helper is killed, and other calls are served meanwhile", async () => {
    const volumeId = "nfs1:d:nfs.example.internal:srv,vols:hung";
    const stagingTargetPath = d.path("stage");
    const started = Date.now();
    const stage = d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(RWX) });
    // While the helper hangs, the driver answers other calls, hostPath volumes included.
    for (let i = 0; i < 3; i++) assert.equal((await d.client.identity.probe({})).ready, true);
    const other = await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] });
    assert.ok(other.volume!.volumeId!.startsWith("hp-"));
    assert.ok(existsSync(pidFile), "the helper was started");
    await expectCode(stage, Code.UNAVAILABLE, /did not finish within 1\.5 s and was stopped/);
    assert.ok(Date.now() - started >= 1500);
    const pid = Number(readFileSync(pidFile, "utf8"));
    // Killed: gone, or a zombie its parent has not reaped yet. The reply goes out as the SIGKILL is
    // sent; the killed process must still be scheduled to die, which on a loaded machine took over a
    // second once (CI's full suite beside other work): waited for by the clock, not a count of polls.
    await until("the hung helper to be killed", () => !processAlive(pid), 20_000);
    assert.equal(await isMounted(stagingTargetPath), false);
  });
});
