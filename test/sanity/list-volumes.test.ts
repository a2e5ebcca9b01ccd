// ListVolumes: every volume once, stable paging, tokens that survive deletes.
import assert from "node:assert/strict";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { BACKENDS } from "./backends";

for (const b of BACKENDS) {
describe(`ListVolumes (${b.name})`, () => {
  let d: DriverProcess;
  const ids: string[] = [];
  before(async () => {
    d = await startDriver();
    for (let i = 0; i < 7; i++) {
      const res = await d.client.controller.createVolume({ name: uniqueName("list"), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) });
      ids.push(res.volume!.volumeId!);
    }
  });
  after(async () => destroyDriver(d));

  async function listAll(pageSize: number): Promise<string[]> {
    const seen: string[] = [];
    let token = "";
    do {
      const res = await d.client.controller.listVolumes({ maxEntries: pageSize, startingToken: token });
      assert.ok((res.entries ?? []).length <= pageSize);
      seen.push(...(res.entries ?? []).map((e) => e.volume!.volumeId!));
      token = res.nextToken ?? "";
    } while (token !== "");
    return seen;
  }

  it("without max_entries returns every volume and no token", async () => {
    const res = await d.client.controller.listVolumes({});
    assert.deepEqual(new Set((res.entries ?? []).map((e) => e.volume!.volumeId)), new Set(ids));
    assert.equal(res.nextToken ?? "", "");
  });

  it("pages with max_entries return each volume exactly once", async () => {
    for (const size of [1, 2, 3, 7, 8]) {
      const seen = await listAll(size);
      assert.deepEqual(seen.slice().sort(), ids.slice().sort(), `page size ${size}`);
      assert.equal(new Set(seen).size, seen.length);
    }
  });

  it("a token stays valid after the volume it names is deleted", async () => {
    const first = await d.client.controller.listVolumes({ maxEntries: 2 });
    const last = first.entries!.at(-1)!.volume!.volumeId!;
    await d.client.controller.deleteVolume({ volumeId: last });
    ids.splice(ids.indexOf(last), 1);
    const rest = await d.client.controller.listVolumes({ startingToken: first.nextToken });
    const all = [...first.entries!.map((e) => e.volume!.volumeId!).filter((v) => v !== last), ...rest.entries!.map((e) => e.volume!.volumeId!)];
    assert.deepEqual(all.sort(), ids.slice().sort());
  });

  it("a volume created between pages appears in a later page", async () => {
    const first = await d.client.controller.listVolumes({ maxEntries: 1 });
    let added: string | undefined;
    // Create volumes until one sorts after the first page's token.
    for (let i = 0; i < 20 && !added; i++) {
      const v = (await d.client.controller.createVolume({ name: uniqueName(b.name === "nfs" ? "zz-late" : "late") /* an nfs ID ends with its name */, volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;
      ids.push(v);
      if (v > first.nextToken!) added = v;
    }
    assert.ok(added);
    const rest = await d.client.controller.listVolumes({ startingToken: first.nextToken });
    assert.ok(rest.entries!.some((e) => e.volume!.volumeId === added));
  });

  it("entries carry a volume condition", async () => {
    const res = await d.client.controller.listVolumes({ maxEntries: 1 });
    assert.equal(res.entries![0]!.status!.volumeCondition!.abnormal ?? false, false);
  });

  it("an invalid starting_token answers ABORTED", async () => {
    await expectCode(d.client.controller.listVolumes({ startingToken: "invalid-token" }), Code.ABORTED);
    await expectCode(d.client.controller.listVolumes({ startingToken: "../../etc" }), Code.ABORTED);
  });

  it("a negative max_entries answers INVALID_ARGUMENT", async () => {
    await expectCode(d.client.controller.listVolumes({ maxEntries: -1 }), Code.INVALID_ARGUMENT);
  });
});
}
