// The capacity ledger: what enforced volumes may still claim, kept in O(1).
import assert from "node:assert/strict";
import { CapacityLedger, type UsageProbe } from "../../src/backends/hostpath/capacity-ledger";

const probe = (used: () => number): UsageProbe => ({ measure: used });

describe("CapacityLedger", () => {
  it("owes each volume its size less what it uses, never less than 0 per volume", async () => {
    const l = new CapacityLedger();
    l.rebuild([], async () => undefined);
    await l.ready;
    let usedA = 0;
    l.set("a", 100, probe(() => usedA));
    l.set("b", 50, probe(() => 500)); // over its size (metadata, a lost limit): owes 0, not -450
    assert.equal(l.outstanding(), 150, "new volumes use nothing yet");
    usedA = 30;
    await l.sample();
    assert.equal(l.outstanding(), 70);
    l.set("a", 200, probe(() => usedA)); // expanded: keeps its sampled usage
    assert.equal(l.outstanding(), 170);
    l.remove("b");
    l.remove("b");
    assert.equal(l.outstanding(), 170);
  });

  it("holds reservations until they are let go, once", async () => {
    const l = new CapacityLedger();
    const release = l.reserve(40);
    assert.equal(l.outstanding(), 40);
    release();
    release();
    assert.equal(l.outstanding(), 0);
  });

  it("rebuilds in the background without undoing what happened meanwhile", async () => {
    const l = new CapacityLedger();
    let resolveSlow: () => void = () => undefined;
    const slow = new Promise<void>((r) => (resolveSlow = r));
    l.rebuild(["x", "y", "z"], async (id) => {
      if (id === "x") await slow;
      return id === "z" ? undefined : { bytes: 10, probe: probe(() => 0) };
    });
    l.remove("y"); // deleted while the rebuild runs: the rebuild must not bring it back
    l.set("w", 5, probe(() => 0)); // created meanwhile
    resolveSlow();
    await l.ready;
    assert.equal(l.outstanding(), 15); // x and w
  });

  it("counts an unmeasurable volume as wholly owed (the careful side)", async () => {
    const l = new CapacityLedger();
    l.set("a", 100, probe(() => {
      throw new Error("gone");
    }));
    await l.sample();
    assert.equal(l.outstanding(), 100);
  });

  it("takes measures that answer later, and keeps an expansion made while one was under way", async () => {
    const l = new CapacityLedger();
    let answer: (n: number) => void = () => undefined;
    l.set("a", 100, { measure: () => new Promise<number>((r) => (answer = r)) });
    const sampling = l.sample();
    l.set("a", 300, probe(() => 10)); // expanded while the old probe was still measuring
    answer(90);
    await sampling;
    assert.equal(l.outstanding(), 300, "the stale measure must not be booked against the new entry");
    await l.sample();
    assert.equal(l.outstanding(), 290);
    l.set("b", 50, { measure: async () => 20 });
    await l.sample();
    assert.equal(l.outstanding(), 320);
  });
});
