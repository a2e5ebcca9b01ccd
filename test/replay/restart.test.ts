// The node plugin killed and restarted in a new mount namespace that
// inherits the node's mounts (as a new container does), between NodeStage
// and NodePublish and between NodePublish and NodeUnpublish, for every
// volume layout and both backends: new pods start on the staged volume,
// old pods' data is intact, every clean-up succeeds (issue 19, fault 2).
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { LAYOUTS, restartScenario, type Layout } from "../../src/replay/restart-scenario";
import { loopFsOrSkip, type LoopFs, type LoopFsKind } from "../sanity/loop-fs";
import { describeContained, callsOf, kindDeployment, replay } from "./replay-harness";

/** The nfs share as the kind overlay's node plugin sees it. */
const SHARE = "/srv/csi-lab-share";

/** Layouts whose volumes need the driver's data directory on a file system of their own. */
const ROOT_FS: Partial<Record<Layout, LoopFsKind[]>> = { quota: ["xfs-prjquota", "btrfs-quota"] };

function expectRestartReplay(layout: Layout, fsKind?: LoopFsKind): void {
  const label = fsKind ? `${layout} (${fsKind})` : layout;
  describe(label, function () {
    let fs: LoopFs | undefined;
    before(async function () {
      if (fsKind) fs = await loopFsOrSkip(this, fsKind, 512 * 1024 * 1024);
    });
    after(async () => fs?.cleanup());

    it(`${label}: a restarted node plugin serves the staged and published volume: new pods start, old data stays, every clean-up succeeds`, async () => {
      const deployment = kindDeployment();
      const hostPaths: Record<string, string> = {};
      if (fs) {
        hostPaths["/var/lib/csi-lab"] = path.join(fs.scratch, "csi-lab");
        mkdirSync(hostPaths["/var/lib/csi-lab"]!, { recursive: true });
      }
      const { result, report, events, loopsLeft } = await replay(restartScenario(layout, { driver: deployment.driverName, share: SHARE }), { hostPaths });
      assert.ok(result.ok, report);
      assert.deepEqual(loopsLeft, [], "every loop device the driver attached is detached once its volume is unstaged");
      assert.equal(events.filter((e) => e.type === "restart").length, 3, "the node plugin restarted three times");
      const calls = callsOf(events).filter((c) => !/GetPluginInfo|NodeGetInfo|Capabilities/.test(c));
      assert.deepEqual(calls, [
        "node CreateVolume OK",
        "node NodeStageVolume OK",
        "node NodePublishVolume OK",
        "node NodePublishVolume OK",
        "node NodeUnpublishVolume OK",
        "node NodeUnpublishVolume OK",
        "node NodeUnstageVolume OK",
        "node DeleteVolume OK",
      ]);
    });
  });
}

describeContained("Replay: node plugin restarts in a new mount namespace", function () {
  this.timeout(120_000);
  for (const layout of LAYOUTS) {
    const kinds = ROOT_FS[layout];
    if (kinds) for (const k of kinds) expectRestartReplay(layout, k);
    else expectRestartReplay(layout);
  }
});
