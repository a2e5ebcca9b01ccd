// The mount table's index (src/mount/mount-index.ts) answers every lookup as a
// pass over the list does (ListMounts, the text way's), in every version it
// handed out, however many changes came after.
import assert from "node:assert/strict";
import { MountIndex, locate, type Mounts } from "../../src/mount/mount-index";
import { ListMounts, type MountEntry } from "../../src/mount/mountinfo";

/** A small deterministic generator (mulberry32), so a failure can be run again. */
function random(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

// Few names, so that mounts stack, nest and share devices, roots and sources.
const POINTS = ["/", "/a", "/a/b", "/a/b/c", "/a/bc", "/d", "/d/e", "/var/lib/k/pods/p1/v/mount", "/var/lib/k", "/a//deleted"];
const PATHS = [...POINTS, "/a/b/c/d", "/ab", "/a/b/x", "/var/lib/k/pods/p1/v/mount/f", "/d/e/f/g", "/zzz", "/var/lib/kk"];
const DEVICES = ["8:1", "8:2", "7:0", "7:1", "0:50", "0:51"];
const ROOTS = ["/", "/x", "/x/y", "/loop0", "/x//deleted"];
const SOURCES = ["/dev/sda1", "tmpfs", "srv:/share/v1", "none"];

function entry(r: (n: number) => number, id: number): MountEntry {
  return {
    id,
    parentId: 1,
    device: DEVICES[r(DEVICES.length)]!,
    root: ROOTS[r(ROOTS.length)]!,
    mountPoint: POINTS[r(POINTS.length)]!,
    options: ["rw"],
    fsType: "tmpfs",
    source: SOURCES[r(SOURCES.length)]!,
    superOptions: ["rw"],
  };
}

/** Every lookup on `table`, as a value to compare. */
function answers(table: Mounts): unknown {
  const ids = (ms: readonly MountEntry[]) => ms.map((m) => m.id);
  return {
    list: ids(table.list),
    at: POINTS.map((p) => table.at(p)?.id),
    containing: PATHS.map((p) => table.containing(p)?.id),
    locate: PATHS.map((p) => locate(table, p)),
    of: DEVICES.flatMap((device) => ROOTS.map((root) => ids(table.of({ device, root })))),
    onDevice: DEVICES.map((d) => ids(table.onDevice(d))),
    withSource: SOURCES.map((s) => ids(table.withSource(s))),
    onLoopDevices: ids(table.onLoopDevices()),
    inside: PATHS.map((p) => ids(table.inside(p))),
  };
}

describe("mount table index", () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`answers as a pass over the list does, in every version it handed out (seed ${seed})`, () => {
      const r = random(seed);
      // The model: the table as a list, in the order of the mounts' unique IDs.
      let model = new Map<number, MountEntry>();
      const index = new MountIndex();
      const versions: { table: Mounts; expected: unknown }[] = [];
      let next = 100;
      for (let batch = 0; batch < 120; batch++) {
        model = new Map(model);
        for (let k = r(6); k >= 0; k--) {
          const existing = [...model.keys()];
          const op = r(10);
          if (op < 5 || existing.length === 0) {
            // A new mount; now and then one with an ID below the newest (moved in from a detached tree).
            const order = r(8) === 0 && next > 101 ? next - 1 - r(Math.min(50, next - 101)) : next++;
            if (model.has(order)) continue;
            const e = entry(r, order);
            model.set(order, e);
            index.add(e, order);
          } else if (op < 8) {
            const order = existing[r(existing.length)]!;
            model.delete(order);
            index.remove(order);
          } else {
            // A move: the same mount, seen again somewhere else.
            const order = existing[r(existing.length)]!;
            const e = entry(r, order);
            model.set(order, e);
            index.add(e, order);
          }
        }
        const table = index.current();
        const list = new ListMounts([...model.entries()].sort(([a], [b]) => a - b).map(([, e]) => e));
        const expected = answers(list);
        assert.deepEqual(answers(table), expected, `batch ${batch}, the newest version`);
        versions.push({ table, expected });
        // Now and then, look again at an older version: it answers as it did.
        const old = versions[r(versions.length)]!;
        assert.deepEqual(answers(old.table), old.expected, `batch ${batch}, an older version`);
      }
      for (const [i, v] of versions.entries()) assert.deepEqual(answers(v.table), v.expected, `version ${i} at the end`);
    });
  }

  it("hands out the same version while nothing changed, and a mount added and removed in one batch leaves none", () => {
    const r = random(9);
    const index = new MountIndex([{ entry: entry(r, 1), order: 1 }]);
    const first = index.current();
    assert.equal(index.current(), first);
    index.add(entry(r, 2), 2);
    index.remove(2);
    const second = index.current();
    assert.deepEqual(second.list.map((m) => m.id), [1]);
    assert.deepEqual(first.list.map((m) => m.id), [1]);
    index.remove(1);
    const third = index.current();
    assert.deepEqual(third.list, []);
    assert.deepEqual(first.list.map((m) => m.id), [1], "the first version still has it");
    assert.equal(first.at(first.list[0]!.mountPoint)?.id, 1);
  });
});
