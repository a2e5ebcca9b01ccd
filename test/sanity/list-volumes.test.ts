// ListVolumes: every volume once, stable paging, tokens that survive deletes.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
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

describe("ListVolumes with a volume record that cannot be read", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  it("lists every other volume, and that one as abnormal, saying why", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push((await d.client.controller.createVolume({ name: uniqueName("list"), volumeCapabilities: [mountCapability()], parameters: { capacity: "none" } })).volume!.volumeId!);
    }
    // What a disk error or a hand edit could leave: the atomic writes of the driver never do.
    const file = path.join(d.root, "volumes", `${ids[1]}.json`);
    const good = await fsp.readFile(file, "utf8");
    await fsp.writeFile(file, '{"version": 1, "volumeId": garbage');
    try {
      const entries = (await d.client.controller.listVolumes({})).entries ?? [];
      assert.deepEqual(entries.map((e) => e.volume!.volumeId).sort(), [...ids].sort());
      for (const e of entries) {
        const condition = e.status!.volumeCondition!;
        if (e.volume!.volumeId !== ids[1]) assert.equal(condition.abnormal, false);
        else {
          assert.equal(condition.abnormal, true);
          assert.match(condition.message!, /record of this volume cannot be read: metadata of volume hp-[0-9a-f]+ is not valid JSON/);
        }
      }
      await expectCode(d.client.controller.controllerGetVolume({ volumeId: ids[1]! }), Code.INTERNAL, /not valid JSON/);
    } finally {
      await fsp.writeFile(file, good);
    }
    for (const id of ids) await d.client.controller.deleteVolume({ volumeId: id });
  });
});
