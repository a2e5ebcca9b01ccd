// What the node plugin remembers of a shared volume's mounts vouches only for the mount it made.
//
// NodeStageVolume and NodePublishVolume keep a record of each mount they
// make (src/storage/node-records.ts), so that a mount is still known to be
// the volume's while its share does not answer. A record names a path. If
// the volume's mount there goes by other means (an administrator's umount)
// and something else is mounted at the same path, the record must not make
// that other mount the volume's: NodeUnstageVolume and NodeUnpublishVolume
// leave it alone (FAILED_PRECONDITION, naming it), as they do any mount
// that is not the volume's.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

function mountedAt(p: string): string | undefined {
  const line = execFileSync("findmnt", ["-n", "-o", "FSTYPE,SOURCE", "--mountpoint", p], { encoding: "utf8" }).trim();
  return line === "" ? undefined : line;
}

function findmnt(p: string): string | undefined {
  try {
    return mountedAt(p);
  } catch {
    return undefined; // findmnt exits 1 when nothing is mounted there
  }
}

describe("A shared volume's mount records after its mount is gone", () => {
  let d: DriverProcess;
  const others: string[] = [];
  before(async () => {
    d = await startDriver();
  });
  after(async () => {
    for (const p of others) if (findmnt(p)) execFileSync("umount", [p]);
    await destroyDriver(d);
  });

  for (const where of ["staging", "target"] as const) {
    it(`NodeUnstage/NodeUnpublish leave alone what someone else mounted at the ${where} path after the volume's mount was unmounted by hand`, async () => {
      const cap = mountCapability(Mode.MULTI_NODE_MULTI_WRITER);
      const v = (await d.client.controller.createVolume({ name: uniqueName("pvc"), volumeCapabilities: [cap], parameters: NFS_LOCAL.parameters(d) })).volume!;
      const req = { volumeId: v.volumeId, volumeContext: v.volumeContext, volumeCapability: cap };
      const stagingTargetPath = d.path(uniqueName("stage"));
      const targetPath = d.path(uniqueName("pod"));
      await d.client.node.nodeStageVolume({ ...req, stagingTargetPath });
      await d.client.node.nodePublishVolume({ ...req, stagingTargetPath, targetPath });

      // An administrator unmounts the volume by hand, and something else is mounted there.
      const place = where === "staging" ? stagingTargetPath : targetPath;
      if (where === "staging") execFileSync("umount", [targetPath]);
      execFileSync("umount", [place]);
      await fsp.mkdir(place, { recursive: true });
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "someone-else", place]);
      others.push(place);
      await fsp.writeFile(path.join(place, "theirs"), "keep");

      const call =
        where === "staging"
          ? d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath })
          : d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath });
      const err = await expectCode(call, Code.FAILED_PRECONDITION);
      assert.match(err.details ?? "", /tmpfs/);
      assert.equal(findmnt(place), "tmpfs  someone-else");
      assert.equal(await fsp.readFile(path.join(place, "theirs"), "utf8"), "keep");

      execFileSync("umount", [place]);
      others.pop();
      if (where === "target") await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath });
      await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath });
      await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    });
  }
});
