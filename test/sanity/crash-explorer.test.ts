// kill -9 at every system call of an RPC that changes the disk or the mount table: after a restart,
// the CO's retry answers OK, the volume keeps what was written to it, and its life ends leaving nothing behind.
//
// `npm test` runs a fixed subset: for the cycles that name one (crash-cycles.ts, `fast`), the
// driver killed just before each call its threads make in those RPCs (a share agent's: just after).
// `npm run crash-explore` runs the whole matrix: every cycle, every explored RPC, killed just before
// and just after each call, and while each helper program (mkfs, cp, mount…) is just after each of its calls.
// `CSI_LAB_CRASH_EXPLORE=twice npm run crash-explore` also kills the driver a second time, before each call of
// the retry that follows a kill before a driver thread's call: a crash while recovering from a crash.
// `CSI_LAB_CRASH_EXPLORE=startup npm run crash-explore` also kills the driver in the start-up (the sweep) after each
// kill just after a driver thread's call, at each of its calls (crash-startup.ts), each distinct start-up once;
// `npm test` does that for the kills a cycle's `fastStartup` names.
import assert from "node:assert/strict";
import { CYCLES, type Cycle } from "./crash-cycles";
import { runCase } from "./crash-case";
import { describeCase, reference, removeScratch, type CaseResult, type CrashCase, type Reference } from "./crash-explorer";
import { UnsupportedFs } from "./loop-fs";
import { skipUnlessInstalled } from "./programs";
import type { KillMoment } from "./strace";

const MODE = process.env.CSI_LAB_CRASH_EXPLORE ?? "";
const WHOLE = MODE === "all" || MODE === "twice" || MODE === "startup";
/** Also kill the driver a second time, at each call of the first retry after a kill before a driver thread's call. */
const TWICE = MODE === "twice";
/** Also kill the driver in the start-up after a kill (in `npm test`, after the kills `fastStartup` names). */
const STARTUP = MODE === "startup";
const MOMENTS: readonly KillMoment[] = WHOLE ? ["before", "after"] : ["before"];

/** Findings not fixed yet: a case whose description matches is expected to fail (and must, until it is taken off). */
const KNOWN: { match: RegExp; why: string }[] = [];

/**
 * The kills whose start-up is explored too (killed at each of its calls, started again): in the startup mode,
 * those just after a driver thread's call, which leave the sweep something half-done to settle; in `npm test`,
 * those the cycle's `fastStartup` names.
 */
const exploreStartup = (c: CrashCase) =>
  STARTUP ? c.moment === "after" && c.role.startsWith("driver") : !WHOLE && (c.cycle.fastStartup?.test(describeCase(c)) ?? false);

const explored = (cycle: Cycle) => cycle.steps.flatMap((step, i) => (step.explore && (WHOLE || cycle.fast?.test(step.name)) ? [i] : []));

describe("Crash explorer: kill -9 at each call that changes the disk or the mount table", function () {
  const tally = { cases: 0, failed: 0, ms: 0 };
  before(function () {
    skipUnlessInstalled(this, "strace");
  });
  after(async () => {
    await removeScratch();
    if (tally.cases > 0) console.log(`      crash explorer: ${tally.cases} cases, ${tally.failed} failed, ${(tally.ms / 1000).toFixed(1)} s`);
  });

  for (const cycle of CYCLES.filter((c) => explored(c).length > 0)) {
    describe(cycle.name, function () {
      this.timeout(WHOLE ? 0 : 120_000);
      let ref: Reference;
      const seenStartups = new Set<string>();
      before(async function () {
        if (cycle.root) skipUnlessInstalled(this, cycle.root.startsWith("btrfs") ? "btrfs" : "xfs_quota");
        try {
          ref = await reference(cycle, MOMENTS);
        } catch (err) {
          if (!(err instanceof UnsupportedFs)) throw err;
          console.log(`      (skipped: ${err.message})`);
          this.skip();
        }
      });

      it("every changing call of the explored RPCs is on a thread the explorer follows", () => {
        assert.deepEqual(ref.unfollowed, []);
      });

      for (const step of explored(cycle)) {
        const twice = TWICE ? ", and again in the retry" : "";
        it(`${cycle.steps[step]!.name}: killed ${MOMENTS.join(" or ")} each call${twice}, the retry answers OK and the cycle ends clean`, async function () {
          const started = Date.now();
          const failures: CaseResult[] = [];
          // The fast subset leaves out the helper programs' calls (mkfs alone has dozens).
          const cases = ref.cases.filter((c) => c.step === step && (WHOLE || !c.role.startsWith("child ")));
          assert.ok(cases.length > 0, "the reference run saw no changing call in this RPC");
          let ran = 0;
          const judge = (result: CaseResult) => {
            ran++;
            const known = KNOWN.find((k) => k.match.test(describeCase(result.case)));
            tally.cases++;
            if (result.problems.length === 0) {
              if (known) failures.push({ ...result, problems: [`passes, but is listed as a known finding (${known.why}): take it off the list`] });
              return;
            }
            tally.failed++;
            if (!known) failures.push(result);
          };
          for (const c of cases) {
            const recordRetry = TWICE && c.moment === "before" && c.role.startsWith("driver");
            const recordStartup = exploreStartup(c) ? (WHOLE ? MOMENTS : (["before"] as const)) : undefined;
            const result = await runCase(c, ref, { recordRetry, recordStartup });
            judge(result);
            // A start-up that makes the same calls as one explored already (most make only the stale socket's unlink) is not explored again.
            const startups = (result.retryCases ?? []).filter((again) => again.startup);
            const key = startups.map((again) => `${again.startup!.role} ${again.startup!.moment} ${again.startup!.signature}`).join("\n");
            if (startups.length > 0 && seenStartups.has(key)) continue;
            seenStartups.add(key);
            for (const again of result.retryCases ?? []) judge(await runCase(again, ref));
          }
          tally.ms += Date.now() - started;
          const report = failures.map((f) => `${describeCase(f.case)}\n${f.problems.map((p) => `    - ${p}`).join("\n")}`);
          assert.deepEqual(report, [], `${failures.length} of ${ran} cases failed:\n${report.join("\n")}`);
        });
      }
    });
  }
});
