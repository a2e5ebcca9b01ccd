// DeleteVolumeGroupSnapshot that fails part-way (a member's content cannot be removed) leaves nothing hidden for long.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { Code, destroyDriver, expectCode, startDriver, uniqueName, type DriverProcess, DIR_VOLUMES } from "./harness";
import { createVolume, snapshotDir, volumeDir } from "./snapshot-helpers";

describe("DeleteVolumeGroupSnapshot that fails part-way", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  const gc = () => d.client.groupController;
  const store = () => path.join(d.root, "snapshots");

  /** A group of two volumes with a file each; its ID and its members' IDs. */
  async function group(name = uniqueName("group")): Promise<{ volumes: string[]; groupSnapshotId: string; ids: string[] }> {
    const volumes = [await createVolume(d), await createVolume(d)];
    for (const id of volumes) await fsp.writeFile(path.join(volumeDir(d, id), "who"), id);
    const g = (await gc().createVolumeGroupSnapshot({ name, sourceVolumeIds: volumes })).groupSnapshot!;
    return { volumes, groupSnapshotId: g.groupSnapshotId!, ids: g.snapshots!.map((s) => s.snapshotId!) };
  }

  /**
   * Make the first member's file undeletable (chattr +i; root passes every permission check), so
   * removing that member's content fails. Returns the lift, which finds the file wherever the
   * driver has moved it since. Skips the test where the file system has no immutable attribute.
   */
  async function pinFirstMember(ctx: Mocha.Context, ids: string[]): Promise<() => Promise<void>> {
    const file = path.join(snapshotDir(d, ids[0]!), "who");
    const { ino } = await fsp.stat(file);
    if (spawnSync("chattr", ["+i", file]).status !== 0) ctx.skip();
    return async () => {
      for (const entry of await fsp.readdir(store(), { recursive: true })) {
        const p = path.join(store(), entry);
        if ((await fsp.lstat(p)).ino === ino) spawnSync("chattr", ["-i", p]);
      }
    };
  }

  /** Whatever of the group and its members is still in the snapshot store, by where it is. */
  async function leftOf(groupSnapshotId: string, ids: string[]): Promise<string[]> {
    const left: string[] = [];
    for (const sub of ["meta", "data", "groups", ".trash"]) {
      for (const entry of await fsp.readdir(path.join(store(), sub))) {
        if ([groupSnapshotId, ...ids].some((id) => entry.startsWith(id))) left.push(`${sub}/${entry}`);
      }
    }
    return left;
  }

  /** Delete the group while its first member's content cannot be removed: the call fails, and the group is gone for the CO. */
  async function failedDelete(ctx: Mocha.Context, g: { groupSnapshotId: string; ids: string[] }): Promise<void> {
    const lift = await pinFirstMember(ctx, g.ids);
    try {
      const failed = gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: g.ids });
      await expectCode(failed, Code.INTERNAL, /could not be removed yet .*; a retry finishes the removal/);
    } finally {
      await lift();
    }
    await expectCode(gc().getVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId }), Code.NOT_FOUND);
    for (const id of g.ids) await expectCode(d.client.controller.getSnapshot({ snapshotId: id }), Code.NOT_FOUND);
  }

  it("a retry, even without snapshot_ids, removes every member and its content", async function () {
    const g = await group();
    await failedDelete(this, g);
    assert.notDeepEqual(await leftOf(g.groupSnapshotId, g.ids), [], "the failure left something for the retry");
    await gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: [] });
    assert.deepEqual(await leftOf(g.groupSnapshotId, g.ids), []);
    await gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: [] }); // and again: idempotent
  });

  it("CreateVolumeGroupSnapshot of the name finishes the removal first: no member of the old group comes back with the new one", async function () {
    const name = uniqueName("group");
    const old = await group(name);
    await failedDelete(this, old);
    const others = [await createVolume(d), await createVolume(d)];
    const g = (await gc().createVolumeGroupSnapshot({ name, sourceVolumeIds: others })).groupSnapshot!;
    assert.equal(g.groupSnapshotId, old.groupSnapshotId, "the name decides the group's ID");
    for (const v of old.volumes) {
      assert.deepEqual((await d.client.controller.listSnapshots({ sourceVolumeId: v })).entries ?? [], [], `snapshots of ${v}`);
    }
    assert.deepEqual(await leftOf(old.groupSnapshotId, old.ids), [`groups/${g.groupSnapshotId}.json`]);
    await gc().deleteVolumeGroupSnapshot({ groupSnapshotId: g.groupSnapshotId, snapshotIds: g.snapshots!.map((s) => s.snapshotId!) });
  });

  it("a restart before any retry removes what the failure left", async function () {
    const g = await group();
    await failedDelete(this, g);
    await d.restart();
    assert.deepEqual(await leftOf(g.groupSnapshotId, g.ids), []);
  });
});
