// GET /healthz answers as Probe does: 200 while the root is writable,
// 503 with the reason once it is not. Anything else is 404 or 405.
import { strict as assert } from "node:assert";
import { rmSync } from "node:fs";
import { get, startDriverWithMetrics, type RunningDriver } from "./driver-process";

describe("metrics: /healthz reflects Probe", () => {
  let driver: RunningDriver;

  before(async () => {
    driver = await startDriverWithMetrics();
  });
  after(async () => {
    await driver?.stop();
  });

  it("answers 200 ok while the root is writable", async () => {
    const res = await get(driver.httpBase, "/healthz");
    assert.equal(res.status, 200);
    assert.equal(res.body, "ok\n");
  });

  it("answers 404 for an unknown path and 405 for a POST", async () => {
    assert.equal((await get(driver.httpBase, "/nothing-here")).status, 404);
    const post = await fetch(driver.httpBase + "/metrics", { method: "POST" });
    assert.equal(post.status, 405);
    await post.text();
  });

  it("answers 503 with the reason once the root is gone", async () => {
    rmSync(driver.root, { recursive: true, force: true });
    const res = await get(driver.httpBase, "/healthz");
    assert.equal(res.status, 503);
    assert.match(res.body, /^not ready: .*ENOENT/);
  });
});
