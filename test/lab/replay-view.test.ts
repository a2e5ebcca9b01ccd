// The lab's third view in a real browser: an example replayed against a
// real driver the lab starts (behind unshare, in a scratch directory),
// each Kubernetes change beside the calls it caused, the checks a user
// relies on (the next pod finds the last pod's files), and nothing left
// behind: no mount, no scratch directory.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readMountInfo } from "../../src/mount/mountinfo";
import { CONTAINED } from "../replay/replay-harness";
import { describeBrowser, openLab, screenshotPath, type LabBrowser } from "./browser";

describeBrowser("lab, view 3: replay without a cluster (Chromium)", function () {
  this.timeout(180_000);
  let b: LabBrowser;
  before(function () {
    // It makes real mounts: only inside test/sandbox/throwaway-root, as the replay tests.
    if (!CONTAINED) this.skip();
  });
  beforeEach(async () => (b = await openLab("#replay")));
  afterEach(async () => b?.close());

  it("replays rolling-update: each object change beside its calls, the new pod finds the old pod's files, and the scratch directory is gone after", async () => {
    const page = b.page;
    await page.waitForSelector("#replay-example option[value=rolling-update]", { state: "attached" });
    await page.selectOption("#replay-example", "rolling-update");
    assert.match((await page.textContent("#replay-summary"))!, /01-deployment\.yaml/);
    await page.click("#replay-run");
    await page.waitForSelector("#replay-steps[data-done]", { timeout: 170_000 });
    const scratch = await page.getAttribute("#replay-steps", "data-scratch");
    assert.equal(await page.getAttribute("#replay-steps", "data-done"), "ok", (await page.textContent("#replay-status")) ?? "");

    const steps = await page.$$eval(".replay-step", (els) => els.map((e) => ({ change: e.querySelector(".change")?.textContent ?? "", methods: [...e.querySelectorAll(".seq-row")].map((r) => r.getAttribute("data-method")) })));
    assert.deepEqual(steps[0]!.methods.slice(0, 2), ["GetPluginInfo", "NodeGetInfo"], "step 0: the sidecars and the kubelet meet the driver");
    // WaitForFirstConsumer: the claim alone causes no call; the first pod that uses it does.
    assert.deepEqual(steps.find((s) => /create PersistentVolumeClaim/.test(s.change))!.methods, [], JSON.stringify(steps, null, 1));
    assert.deepEqual(steps.find((s) => /create Deployment/.test(s.change))!.methods, ["CreateVolume", "NodeStageVolume", "NodePublishVolume"]);
    const all = steps.flatMap((s) => s.methods);
    for (const m of ["NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume", "DeleteVolume"]) assert.ok(all.includes(m), `${m} in ${all.join(" ")}`);
    const checks = await page.$$eval(".check[data-check]", (els) => els.map((e) => `${e.getAttribute("data-check")} ${e.textContent}`));
    assert.ok(checks.length > 0 && checks.every((c) => c.startsWith("ok")), checks.join("\n"));
    assert.ok(checks.some((c) => /finds what earlier pods wrote/.test(c) && /\b\w+\.txt|file/.test(c)), checks.join("\n"));

    await page.evaluate(`document.querySelector(".replay-step[data-step='1']").scrollIntoView({ block: "start" })`);
    await page.screenshot({ path: screenshotPath("lab-replay.png") });
    // A call opens to its request and reply.
    await page.click(".seq-row[data-method=CreateVolume]");
    assert.match((await page.textContent(".details:not([hidden])"))!, /"volumeId": "hp-[0-9a-f]{32}"/);

    assert.ok(scratch && scratch.includes("csi-lab-lab-replay-"), "the status names the scratch directory");
    assert.equal(existsSync(scratch), false, "the scratch directory is removed");
    assert.deepEqual(readMountInfo().filter((m) => m.mountPoint.includes("csi-lab-lab-replay-")), [], "no mount of the replay is seen here");
  });

  it("names a missing example instead of starting anything", async () => {
    const page = b.page;
    const text = await page.evaluate(`fetch(document.querySelector("meta[name=lab-token]") && "/api/replay?example=nope&token=" + document.querySelector("meta[name=lab-token]").content).then((r) => r.text())`);
    assert.match(String(text), /no example named \\"nope\\"/);
  });
});
