// Two volumes staged at one staging path, or published at one target, at the same
// moment — a CO's mistake or a hostile caller; the kubelet gives each volume places of
// its own. Each call's lock is on its volume, so both could find the place free and
// mount one volume over the other: the pod would then see the other volume's data.
// Each call also holds its place (placeKey in src/node/node-path.ts): the second is
// answered ABORTED, and its retry finds the first volume there.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { blockCapability, Code, destroyDriver, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

/** How many mounts are stacked at `p`. */
function mountsAt(p: string): number {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.split(" ")[4] === p).length;
}

describe("Two volumes at one place at once", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  for (const { title, parameters, cap } of [
    { title: "image volumes (whose stage waits for a loop device)", parameters: { capacity: "image" }, cap: mountCapability() },
    { title: "directory volumes", parameters: { capacity: "none" }, cap: mountCapability() },
    { title: "block volumes", parameters: {}, cap: blockCapability() },
  ]) {
    it(`${title}: never one over the other at a staging path or a target; the loser is told`, async function () {
      this.timeout(120_000);
      for (let round = 0; round < 5; round++) {
        const ids: string[] = [];
        for (let i = 0; i < 2; i++) {
          ids.push((await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap], capacityRange: { requiredBytes: 16 << 20 }, parameters })).volume!.volumeId!);
        }
        const staging = d.path(`one-stage-${round}`);
        const staged = await Promise.allSettled(ids.map((volumeId) => d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: cap })));
        assert.ok(mountsAt(staging) <= 1 && mountsAt(path.join(staging, "block")) <= 1, "one volume at the staging path at most");
        assert.equal(staged.filter((r) => r.status === "fulfilled").length, 1, "one stage succeeds");
        const refused = staged.find((r) => r.status === "rejected") as PromiseRejectedResult;
        assert.ok(([Code.ABORTED, Code.ALREADY_EXISTS] as number[]).includes((refused.reason as { code: number }).code), `the other is told: ${String(refused.reason)}`);
        const winner = ids[staged.findIndex((r) => r.status === "fulfilled")]!;

        // Both staged, each at its own path; then both published at one target.
        const stagings = [staging, d.path(`one-stage-${round}-b`)];
        const other = ids.find((id) => id !== winner)!;
        await d.client.node.nodeStageVolume({ volumeId: other, stagingTargetPath: stagings[1]!, volumeCapability: cap });
        const target = d.path(`one-target-${round}`);
        const published = await Promise.allSettled(
          [winner, other].map((volumeId, i) => d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: stagings[i]!, targetPath: target, volumeCapability: cap })),
        );
        assert.ok(mountsAt(target) <= 1, "one volume at the target at most");
        assert.equal(published.filter((r) => r.status === "fulfilled").length, 1, "one publish succeeds");
        for (const [i, volumeId] of [winner, other].entries()) {
          if (published[i]!.status === "fulfilled") await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target });
          await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: stagings[i]! });
        }
      }
    });
  }
});
