// The ID index behind ListVolumes paging.
import assert from "node:assert/strict";
import { SortedIndex } from "../../src/storage/sorted-index";

describe("SortedIndex", () => {
  it("pages in order, each ID once, with 'more' set correctly", () => {
    const idx = SortedIndex.from(["d", "b", "a", "c", "b"]);
    assert.equal(idx.size, 4);
    assert.deepEqual(idx.page("", 2), { ids: ["a", "b"], more: true });
    assert.deepEqual(idx.page("b", 2), { ids: ["c", "d"], more: false });
    assert.deepEqual(idx.page("d", 2), { ids: [], more: false });
  });

  it("continues after a token that was deleted, and includes IDs added later", () => {
    const idx = SortedIndex.from(["a", "c", "e"]);
    idx.delete("c");
    idx.add("d");
    assert.deepEqual(idx.page("c", 10).ids, ["d", "e"]);
    assert.ok(idx.has("d") && !idx.has("c"));
  });

  it("matches a naive implementation on random operations", () => {
    const idx = new SortedIndex();
    const naive = new Set<string>();
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 2000; i++) {
      const id = `id-${Math.floor(rnd() * 300)}`;
      if (rnd() < 0.6) {
        idx.add(id);
        naive.add(id);
      } else {
        idx.delete(id);
        naive.delete(id);
      }
    }
    const sorted = [...naive].sort();
    assert.deepEqual(idx.page("", 10_000).ids, sorted);
    assert.deepEqual(idx.page("id-150", 5).ids, sorted.filter((x) => x > "id-150").slice(0, 5));
  });
});
