// ListSnapshots: every snapshot once, by ID, by source volume, stable paging.
import assert from "node:assert/strict";
import { Code, destroyDriver, expectCode, startDriver, type DriverProcess } from "./harness";
import { createSnapshot, createVolume } from "./snapshot-helpers";

describe("ListSnapshots", () => {
  let d: DriverProcess;
  let volA: string;
  let volB: string;
  const ofA: string[] = [];
  const ofB: string[] = [];
  before(async () => {
    d = await startDriver();
    volA = await createVolume(d);
    volB = await createVolume(d);
    for (let i = 0; i < 5; i++) ofA.push(await createSnapshot(d, volA));
    for (let i = 0; i < 3; i++) ofB.push(await createSnapshot(d, volB));
  });
  after(async () => destroyDriver(d));

  const all = () => [...ofA, ...ofB];

  async function listAll(pageSize: number, sourceVolumeId?: string): Promise<string[]> {
    const seen: string[] = [];
    let token = "";
    do {
      const res = await d.client.controller.listSnapshots({ maxEntries: pageSize, startingToken: token, sourceVolumeId });
      assert.ok((res.entries ?? []).length <= pageSize);
      seen.push(...(res.entries ?? []).map((e) => e.snapshot!.snapshotId!));
      token = res.nextToken ?? "";
    } while (token !== "");
    return seen;
  }

  it("without filters returns every snapshot and no token", async () => {
    const res = await d.client.controller.listSnapshots({});
    assert.deepEqual(new Set(res.entries!.map((e) => e.snapshot!.snapshotId)), new Set(all()));
    assert.equal(res.nextToken ?? "", "");
    for (const e of res.entries!) assert.equal(e.snapshot!.readyToUse, true);
  });

  it("pages with max_entries return each snapshot exactly once", async () => {
    for (const size of [1, 2, 3, 8, 9]) {
      const seen = await listAll(size);
      assert.deepEqual(seen.slice().sort(), all().sort(), `page size ${size}`);
    }
  });

  it("by snapshot_id returns that snapshot only", async () => {
    const res = await d.client.controller.listSnapshots({ snapshotId: ofB[1] });
    assert.deepEqual(res.entries!.map((e) => e.snapshot!.snapshotId), [ofB[1]]);
  });

  it("by source_volume_id returns that volume's snapshots only, paged", async () => {
    const res = await d.client.controller.listSnapshots({ sourceVolumeId: volB });
    assert.deepEqual(res.entries!.map((e) => e.snapshot!.snapshotId).sort(), ofB.slice().sort());
    for (const size of [1, 2, 4]) assert.deepEqual((await listAll(size, volA)).sort(), ofA.slice().sort(), `page size ${size}`);
  });

  it("by snapshot_id and a different source_volume_id returns nothing", async () => {
    assert.deepEqual((await d.client.controller.listSnapshots({ snapshotId: ofA[0], sourceVolumeId: volB })).entries ?? [], []);
  });

  it("by an ID or a volume that does not exist returns nothing (not an error)", async () => {
    assert.deepEqual((await d.client.controller.listSnapshots({ snapshotId: "none-exist-id" })).entries ?? [], []);
    assert.deepEqual((await d.client.controller.listSnapshots({ snapshotId: "snap-00000000000000000000000000000000" })).entries ?? [], []);
    assert.deepEqual((await d.client.controller.listSnapshots({ sourceVolumeId: "hp-00000000000000000000000000000000" })).entries ?? [], []);
  });

  it("a token stays valid after the snapshot it names is deleted, and the deleted one is gone", async () => {
    const first = await d.client.controller.listSnapshots({ maxEntries: 2 });
    const last = first.entries!.at(-1)!.snapshot!.snapshotId!;
    await d.client.controller.deleteSnapshot({ snapshotId: last });
    for (const list of [ofA, ofB]) if (list.includes(last)) list.splice(list.indexOf(last), 1);
    const rest = await d.client.controller.listSnapshots({ startingToken: first.nextToken });
    const seen = [...first.entries!.map((e) => e.snapshot!.snapshotId!).filter((s) => s !== last), ...rest.entries!.map((e) => e.snapshot!.snapshotId!)];
    assert.deepEqual(seen.sort(), all().sort());
  });

  it("a snapshot created between pages appears in a later page", async () => {
    const first = await d.client.controller.listSnapshots({ maxEntries: 1 });
    let added: string | undefined;
    for (let i = 0; i < 20 && !added; i++) {
      const s = await createSnapshot(d, volA);
      ofA.push(s);
      if (s > first.nextToken!) added = s;
    }
    assert.ok(added);
    const rest = await d.client.controller.listSnapshots({ startingToken: first.nextToken });
    assert.ok(rest.entries!.some((e) => e.snapshot!.snapshotId === added));
  });

  it("an invalid starting_token answers ABORTED", async () => {
    await expectCode(d.client.controller.listSnapshots({ startingToken: "invalid-token" }), Code.ABORTED, /start again/);
    await expectCode(d.client.controller.listSnapshots({ startingToken: "hp-00000000000000000000000000000000" }), Code.ABORTED);
  });

  it("a negative max_entries answers INVALID_ARGUMENT", async () => {
    await expectCode(d.client.controller.listSnapshots({ maxEntries: -1 }), Code.INVALID_ARGUMENT, /negative/);
  });
});
