// Old kubelets send the socket path as the HTTP/2 :authority; we must answer them.
import assert from "node:assert/strict";
import { destroyDriver, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("HTTP/2 :authority", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  it("a client whose :authority is the socket path gets answers, call after call", async () => {
    const old = d.connect({ authority: d.socket });
    try {
      const info = await old.identity.getPluginInfo({});
      assert.equal(info.name, "csi-lab.example.org");
      // Several calls on one connection exercise the HPACK state across header blocks.
      for (let i = 0; i < 20; i++) {
        await old.controller.createVolume({ name: uniqueName("auth"), volumeCapabilities: [mountCapability()] });
      }
    } finally {
      old.close();
    }
  });

  it("clients with a normal :authority are unaffected", async () => {
    const normal = d.connect({ authority: "localhost" });
    try {
      assert.equal((await normal.identity.probe({})).ready, true);
    } finally {
      normal.close();
    }
  });
});
