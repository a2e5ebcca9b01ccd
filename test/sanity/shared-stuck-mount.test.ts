// A mount of an NFS export whose server stopped answering, killed at its deadline but asleep in the kernel, is remembered under the
// export like a copy's stuck tool: until it exits, calls on that export answer UNAVAILABLE at once naming it and start no other mount.
//
// This machine's kernel has no NFS client, so mount(8) is a stand-in ("fake-nfs"): it serves server:/path by bind-mounting
// <scratch>/exports/<server>/<path>, and while the server is "down" it sleeps in the kernel instead — a flush of a share whose
// disk is frozen (stalled-share.ts), which SIGKILL does not end until the disk is thawed, as mount.nfs on a dead server.
import assert from "node:assert/strict";
import { existsSync, promises as fsp, readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Code, destroyDriver, expectCode, isMounted, Mode, mountCapability, mountsAt, shellQuote, startDriver, uniqueName, type DriverProcess } from "./harness";
import { processAlive, until } from "./processes";
import { skipUnlessInstalled } from "./programs";
import { makeStalledShare, type StalledShare } from "./stalled-share";

const RWX = Mode.MULTI_NODE_MULTI_WRITER;
const PATIENT = { timeoutMs: 20_000 };

function fakeNfs(dir: string, disk: string): string {
  const q = (...parts: string[]) => shellQuote(path.join(dir, ...parts));
  return `#!/bin/bash
if [ "$1" = "-t" ] && [ "$2" = "nfs" ]; then
  echo $$ >> ${q("helpers.log")}
  shift 2
  if [ "$1" = "-o" ]; then shift 2; fi
  server=\${1%%:*}; p=\${1#*:}
  # The server is down: asleep in the kernel, as mount.nfs waiting for it.
  [ -e ${q("server-down")} ] && exec sync --file-system ${shellQuote(disk)}
  exec mount --bind ${q("exports")}"/$server$p" "$2"
fi
exec mount "$@"
`;
}


describe("A mount of an NFS export asleep in the kernel after its deadline", function () {
  let d: DriverProcess;
  let disk: StalledShare | undefined;
  let dir: string;
  before(async function () {
    skipUnlessInstalled(this, "fsfreeze", "mkfs.ext2");
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-test-"));
    disk = await makeStalledShare(path.join(dir, "server-disk"));
    await fsp.mkdir(path.join(dir, "exports", "nfs.example.internal", "srv", "vols"), { recursive: true });
    await fsp.mkdir(path.join(dir, "bin"));
    await fsp.writeFile(path.join(dir, "bin", "fake-nfs"), fakeNfs(dir, disk.path), { mode: 0o755 });
    const program = path.join(dir, "bin", "fake-nfs");
    d = await startDriver({ dir, extraArgs: ["--mount-program", program, "--mount-timeout", "1", "--allow-share", "nfs.example.internal:/srv/vols"] });
  });
  after(async () => {
    await disk?.resume();
    await destroyDriver(d);
    await disk?.cleanup();
  });

  const params = { backend: "nfs", server: "nfs.example.internal", share: "/srv/vols" };
  /** The pids of the mounts of the export the driver started, in order. */
  const helpers = () => {
    const log = path.join(dir, "helpers.log");
    return existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").map(Number) : [];
  };
  const create = (name = uniqueName("pvc")) => d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability(RWX)], parameters: params }, PATIENT);
  const stage = (volumeId: string, stagingTargetPath: string) =>
    d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(RWX) }, PATIENT);

  /** The server stops answering: every mount of its export from now on sleeps in the kernel. */
  const serverDown = async () => {
    await disk!.stall();
    await fsp.writeFile(path.join(disk!.path, "pending"), "a write the disk never takes"); // what the stand-in's flush waits on
    await fsp.writeFile(path.join(dir, "server-down"), "");
  };
  /** The server answers again: the stuck mounts finish (and exit). */
  const serverBack = async (stuck: number[]) => {
    await fsp.rm(path.join(dir, "server-down"));
    await disk!.resume();
    await until("the stopped mounts to exit once the server answers", () => stuck.every((pid) => !processAlive(pid)), 20_000);
  };
  afterEach(async () => {
    if (existsSync(path.join(dir, "server-down"))) await serverBack(helpers());
  });

  const firstCalls: [string, (volumeId: string) => Promise<unknown>][] = [
    ["CreateVolume", () => create()],
    ["NodeStageVolume", (volumeId) => stage(volumeId, d.path(uniqueName("stage")))],
  ];
  for (const [rpc, first] of firstCalls) {
    it(`after ${rpc}'s mount is stopped asleep: calls on the export answer UNAVAILABLE naming it, start no mount, and work once it exits`, async () => {
      const v = (await create()).volume!;
      await serverDown();
      const before = helpers().length;
      const stopped = /^mounting .*NFS export nfs\.example\.internal:\/srv\/vols did not finish within 1 s and was stopped/;
      await expectCode(first(v.volumeId!), Code.UNAVAILABLE, stopped);
      const stuck = helpers().slice(before);
      assert.equal(stuck.length, 1);
      assert.ok(processAlive(stuck[0]!), "the stopped mount sleeps on in the kernel until the server answers");
      const refused = new RegExp(
        `^the mount \\(pid ${stuck[0]}\\) of an earlier call on NFS export nfs\\.example\\.internal:/srv/vols was stopped \\d+ s ago ` +
          "at its deadline and is still stuck in the kernel",
      );
      const stagingTargetPath = d.path(uniqueName("stage"));
      for (let i = 0; i < 3; i++) {
        // Each would otherwise start one more mount that sleeps on beside it.
        await expectCode(create(), Code.UNAVAILABLE, refused);
        await expectCode(stage(v.volumeId!, stagingTargetPath), Code.UNAVAILABLE, refused);
      }
      assert.deepEqual(helpers().slice(before), stuck, "no other mount was started");
      assert.equal(await isMounted(stagingTargetPath), false);

      await serverBack(stuck);
      const made = (await create()).volume!;
      assert.ok(existsSync(path.join(dir, "exports", "nfs.example.internal", "srv", "vols", made.volumeId!.split(":").at(-1)!)));
      await stage(v.volumeId!, stagingTargetPath);
      assert.equal(await isMounted(stagingTargetPath), true);
      await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath });
    });
  }

  it("staged and published before: NodeStageVolume and NodePublishVolume again answer UNAVAILABLE naming it, keep the mounts, OK once it exits", async () => {
    const cap = { mount: { fsType: "", mountFlags: [], volumeMountGroup: "4242" }, accessMode: { mode: RWX } };
    const v = (await create()).volume!;
    const req = { volumeId: v.volumeId, volumeContext: v.volumeContext, volumeCapability: cap };
    const stagingTargetPath = d.path(uniqueName("stage"));
    const targetPath = d.path(uniqueName("pod"));
    const restage = () => d.client.node.nodeStageVolume({ ...req, stagingTargetPath }, PATIENT);
    const republish = () => d.client.node.nodePublishVolume({ ...req, stagingTargetPath, targetPath }, PATIENT);
    await restage();
    await republish();
    /** The very mounts the pods were set up from (the same mount ID, device and root). */
    const mounts = () => mountsAt(stagingTargetPath, targetPath);
    const before = mounts();
    assert.equal(before.length, 2);

    // A CreateVolume's mount of the same export is stopped asleep: a tool stuck on the share the volume is staged from.
    await serverDown();
    const started = helpers().length;
    await expectCode(create(), Code.UNAVAILABLE, /did not finish within 1 s and was stopped/);
    const stuck = helpers().slice(started);
    assert.equal(stuck.length, 1);
    assert.ok(processAlive(stuck[0]!));
    const refused = new RegExp(
      `^the mount \\(pid ${stuck[0]}\\) of an earlier call on NFS export nfs\\.example\\.internal:/srv/vols was stopped .* still stuck in the kernel`,
    );
    for (let i = 0; i < 2; i++) {
      // The kubelet's retries: the share cannot be checked, and what is mounted stays.
      await expectCode(restage(), Code.UNAVAILABLE, refused);
      assert.deepEqual(mounts(), before, "the staged and published mounts are the ones made before");
      await expectCode(republish(), Code.UNAVAILABLE, refused);
    }
    const stats = await d.client.node.nodeGetVolumeStats({ volumeId: v.volumeId, volumePath: stagingTargetPath });
    assert.equal(stats.volumeCondition!.abnormal, true);
    assert.match(stats.volumeCondition!.message ?? "", refused);

    await serverBack(stuck);
    await restage();
    await republish();
    assert.deepEqual(mounts(), before, "a healthy staged volume is left as it is");
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath });
  });
});
