// The lab's second view in a real browser: connected to a running driver's
// /events (through the lab), it draws a volume's life as the test calls
// the driver — Create → Stage → Publish → Unpublish → Unstage → Delete —
// and a row opens to its request and reply, secrets redacted.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { connect, type CsiClient } from "../../src/client/csi-client";
import { mountCapability } from "../sanity/harness";
import { createVolumeRequest, startDriverWithMetrics, type RunningDriver } from "../metrics/driver-process";
import { describeBrowser, openLab, screenshotPath, type LabBrowser } from "./browser";

describeBrowser("lab, view 2: a volume's life, live (Chromium)", function () {
  this.timeout(60_000);
  let driver: RunningDriver;
  let client: CsiClient;
  let b: LabBrowser;
  before(async () => {
    driver = await startDriverWithMetrics();
    client = connect(driver.endpoint);
    b = await openLab("#live");
  });
  after(async () => {
    try {
      await b?.close();
    } finally {
      client?.close();
      await driver?.stop();
    }
  });

  it("draws each call the driver serves as it happens, grouped per volume, and shows a call's request and reply", async () => {
    const page = b.page;
    await page.fill("#live-address", driver.httpBase.replace("http://", ""));
    await page.click("#live-connect");
    await page.waitForSelector("#live-status:has-text('waiting for calls')");

    const kubelet = path.join(driver.dir, "kubelet");
    const created = await client.controller.createVolume({ ...createVolumeRequest("lab-live-vol", 16 * 1024 * 1024), secrets: { token: "hunter2" } });
    const volumeId = created.volume!.volumeId;
    const group = `section[data-volume="${volumeId}"]`;
    await page.waitForSelector(`${group} .seq-row[data-method=CreateVolume]`);
    const stagingTargetPath = path.join(kubelet, "plugins/staging/lab-live");
    const targetPath = path.join(kubelet, "pods/pod-1/volumes/lab-live/mount");
    mkdirSync(path.dirname(stagingTargetPath), { recursive: true }); // the kubelet makes the parents
    mkdirSync(path.dirname(targetPath), { recursive: true });
    await client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(), publishContext: {}, volumeContext: {}, secrets: {} });
    await client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: mountCapability(), readonly: false, publishContext: {}, volumeContext: {}, secrets: {} });
    await page.waitForSelector(`${group} .seq-row[data-method=NodePublishVolume]`);
    await client.node.nodeUnpublishVolume({ volumeId, targetPath });
    await client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await assert.rejects(client.node.nodeUnstageVolume({ volumeId: "", stagingTargetPath }));
    await client.controller.deleteVolume({ volumeId, secrets: {} });
    await page.waitForSelector(`${group} .seq-row[data-method=DeleteVolume]`);

    const methods = await page.$$eval(`${group} .seq-row`, (els) => els.map((e) => e.getAttribute("data-method")));
    assert.deepEqual(methods, ["CreateVolume", "NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume", "DeleteVolume"]);
    const stages = await page.$$eval(`${group} .lifecycle span.done`, (els) => els.map((e) => e.textContent));
    assert.deepEqual(stages, ["Create", "Stage", "Publish", "Unpublish", "Unstage", "Delete"]);
    await page.waitForSelector(".seq-row[data-code=INVALID_ARGUMENT].failed");
    assert.match((await page.textContent(`${group} h3`))!, /lab-live-vol/);

    await page.screenshot({ path: screenshotPath("lab-live.png") });
    await page.click(`${group} .seq-row[data-method=CreateVolume]`);
    const details = (await page.textContent(`${group} .details:not([hidden])`))!;
    assert.match(details, /"name": "lab-live-vol"/);
    assert.match(details, /"token": "\*\*\*stripped\*\*\*"/);
    assert.match(details, new RegExp(`"volumeId": "${volumeId}"`), "the reply");
    assert.doesNotMatch(await page.content(), /hunter2/);
  });

  it("says so when no driver answers at the address", async () => {
    const page = b.page;
    await page.click("#live-connect"); // disconnect
    await page.fill("#live-address", "127.0.0.1:1");
    await page.click("#live-connect");
    await page.waitForSelector("#live-status.bad");
    assert.match((await page.textContent("#live-status"))!, /Could not connect to a driver at 127\.0\.0\.1:1/);
  });
});
