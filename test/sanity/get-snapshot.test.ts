// GetSnapshot: one snapshot by ID, NOT_FOUND for any other.
import assert from "node:assert/strict";
import { Code, destroyDriver, expectCode, startDriver, type DriverProcess, DIR_VOLUMES } from "./harness";
import { volumeWithSnapshot } from "./snapshot-helpers";

describe("GetSnapshot", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  it("answers the snapshot as CreateSnapshot did", async () => {
    const { volumeId, snapshotId } = await volumeWithSnapshot(d);
    const s = (await d.client.controller.getSnapshot({ snapshotId })).snapshot!;
    assert.equal(s.snapshotId, snapshotId);
    assert.equal(s.sourceVolumeId, volumeId);
    assert.equal(s.readyToUse, true);
  });

  it("of a snapshot that does not exist answers NOT_FOUND", async () => {
    await expectCode(d.client.controller.getSnapshot({ snapshotId: "snap-00000000000000000000000000000000" }), Code.NOT_FOUND, /does not exist/);
    await expectCode(d.client.controller.getSnapshot({ snapshotId: "no-such-snapshot" }), Code.NOT_FOUND);
  });

  it("without a snapshot_id answers INVALID_ARGUMENT", async () => {
    await expectCode(d.client.controller.getSnapshot({}), Code.INVALID_ARGUMENT, /snapshot_id is required/);
  });
});
