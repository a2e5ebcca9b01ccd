// SIGTERM: in-flight calls finish, the socket is removed, the exit is clean.
// A second driver on a live socket refuses to start instead of stealing it.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { Code, DIR_VOLUMES, DriverProcess, destroyDriver, expectCode, mountCapability, startDriver, uniqueName } from "./harness";

/** A volume with enough files that deleting it takes a noticeable moment. */
async function bigVolume(d: DriverProcess): Promise<string> {
  const id = (await d.client.controller.createVolume({ name: uniqueName("big"), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
  const data = path.join(d.root, "data", id);
  for (let dir = 0; dir < 40; dir++) {
    await fsp.mkdir(path.join(data, `d${dir}`));
    await Promise.all(Array.from({ length: 500 }, (_, f) => fsp.writeFile(path.join(data, `d${dir}`, `f${f}`), "")));
  }
  return id;
}

async function waitForLog(d: DriverProcess, pattern: RegExp): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (d.logs.some((l) => pattern.test(l))) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`no log line matching ${pattern}`);
}

describe("Shutdown", () => {
  let d: DriverProcess | undefined;
  afterEach(async () => destroyDriver(d));

  it("SIGTERM lets an in-flight call finish, removes the socket and exits 0", async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    const id = await bigVolume(d);
    const inflight = d.client.controller.deleteVolume({ volumeId: id });
    await waitForLog(d, /"msg":"request","rpc":"DeleteVolume"/);
    d.proc.kill("SIGTERM");
    await inflight; // completes successfully despite the signal
    assert.equal(await d.exit, 0);
    assert.equal(existsSync(d.socket), false, "socket removed");
    assert.equal(existsSync(path.join(d.root, "data", id)), false, "the delete really happened");
    const order = d.jsonLogs().map((l) => `${l.msg}${l.rpc ? `:${l.rpc}` : ""}`);
    assert.ok(order.indexOf("shutting down") < order.indexOf("rpc:DeleteVolume"), order.join(" "));
  });

  it("a second call on a volume that is busy answers ABORTED", async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    const id = await bigVolume(d);
    const first = d.client.controller.deleteVolume({ volumeId: id });
    await waitForLog(d, /"msg":"request","rpc":"DeleteVolume"/);
    await expectCode(d.client.controller.deleteVolume({ volumeId: id }), Code.ABORTED, /in progress/);
    await first;
  });

  it("a second driver on a live socket refuses to start", async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    const second = new DriverProcess(d.dir, {});
    await assert.rejects(second.start(), /another process is serving/);
    assert.equal((await d.client.identity.probe({})).ready, true);
  });

  it("a socket path occupied by a regular file is not deleted", async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    await d.stop();
    await fsp.writeFile(d.socket, "not a socket");
    await assert.rejects(d.start(), /not a socket/);
    assert.equal(await fsp.readFile(d.socket, "utf8"), "not a socket");
  });
});
