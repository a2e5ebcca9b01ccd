// DeleteSnapshot: removes the snapshot and its content; idempotent; the spec's error codes.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, type DriverProcess, DIR_VOLUMES } from "./harness";
import { snapshotDir, volumeWithSnapshot } from "./snapshot-helpers";

describe("DeleteSnapshot", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  it("removes the snapshot and its content", async () => {
    const { snapshotId } = await volumeWithSnapshot(d);
    await fsp.access(snapshotDir(d, snapshotId));
    await d.client.controller.deleteSnapshot({ snapshotId });
    await expectCode(d.client.controller.getSnapshot({ snapshotId }), Code.NOT_FOUND);
    await assert.rejects(fsp.access(snapshotDir(d, snapshotId)), /ENOENT/);
    assert.deepEqual((await d.client.controller.listSnapshots({ snapshotId })).entries ?? [], []);
  });

  it("of a snapshot already deleted, or never made, succeeds", async () => {
    const { snapshotId } = await volumeWithSnapshot(d);
    await d.client.controller.deleteSnapshot({ snapshotId });
    await d.client.controller.deleteSnapshot({ snapshotId });
    await d.client.controller.deleteSnapshot({ snapshotId: "snap-00000000000000000000000000000000" });
    await d.client.controller.deleteSnapshot({ snapshotId: "reallyfakesnapshotid" });
  });

  it("whose content would not go: the retry removes it, without waiting for a restart", async () => {
    const { snapshotId } = await volumeWithSnapshot(d);
    const pinned = path.join(snapshotDir(d, snapshotId), "pinned");
    await fsp.writeFile(pinned, "x");
    execFileSync("chattr", ["+i", pinned]); // rm fails on it (EPERM), even as root
    const trash = path.join(d.root, "snapshots", ".trash");
    try {
      await expectCode(d.client.controller.deleteSnapshot({ snapshotId }), Code.INTERNAL, /pinned.*Operation not permitted/);
      await expectCode(d.client.controller.getSnapshot({ snapshotId }), Code.NOT_FOUND); // the record went first
    } finally {
      execFileSync("find", [path.join(d.root, "snapshots"), "-name", "pinned", "-exec", "chattr", "-i", "{}", ";"]); // wherever it is now
    }
    await d.client.controller.deleteSnapshot({ snapshotId });
    assert.deepEqual((await fsp.readdir(trash)).filter((e) => e.startsWith(snapshotId)), []);
  });

  it("leaves the source volume and volumes restored from it alone", async () => {
    const { volumeId, snapshotId } = await volumeWithSnapshot(d);
    const restored = await d.client.controller.createVolume({
      name: `restored-of-${snapshotId}`,
      volumeCapabilities: [mountCapability()],
      volumeContentSource: { snapshot: { snapshotId } },
    });
    await d.client.controller.deleteSnapshot({ snapshotId });
    await d.client.controller.controllerGetVolume({ volumeId });
    await d.client.controller.controllerGetVolume({ volumeId: restored.volume!.volumeId });
  });

  it("without a snapshot_id answers INVALID_ARGUMENT", async () => {
    await expectCode(d.client.controller.deleteSnapshot({}), Code.INVALID_ARGUMENT, /snapshot_id is required/);
    await expectCode(d.client.controller.deleteSnapshot({ snapshotId: "../x" }), Code.INVALID_ARGUMENT);
  });
});
