// Logs are JSON lines with the RPC, the volume and the duration; secrets never appear.
import assert from "node:assert/strict";
import { destroyDriver, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("Logging", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  it("writes one JSON line per call with rpc, volume and duration", async () => {
    const name = uniqueName();
    await d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()] });
    const line = d.jsonLogs().find((l) => l.msg === "rpc" && l.rpc === "CreateVolume" && l.name === name);
    assert.ok(line, "a log line for the call");
    assert.equal(line.code, "OK");
    assert.equal(typeof line.ms, "number");
  });

  it("never writes a secret's value, even at debug level", async () => {
    const secret = "hunter2-super-secret-value";
    await d.client.controller
      .createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], secrets: { password: secret } })
      .catch(() => undefined);
    await d.client.controller.deleteVolume({ volumeId: "fake-vol-id", secrets: { token: secret } });
    assert.ok(d.logs.length > 0);
    assert.ok(!d.logs.some((l) => l.includes(secret)), "secret value found in logs");
    assert.ok(d.logs.some((l) => l.includes('"password":"***stripped***"')), "secret key kept, value redacted");
  });
});
