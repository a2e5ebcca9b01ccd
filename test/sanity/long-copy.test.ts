// A copy that outlasts the CO's deadline is finished, not abandoned: retries are ABORTED until it is done, then answered.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import { Code, destroyDriver, mountCapability, startDriver, uniqueName, type DriverProcess, DIR_VOLUMES } from "./harness";
import { codeName } from "../../src/csi/errors";
import { createVolume, describeTree, volumeDir, withoutInodes } from "./snapshot-helpers";

describe("Copies longer than the caller's deadline", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  /** Call with a deadline far shorter than the copy until it succeeds; returns the codes seen on the way. */
  async function retryUntilDone<T>(call: () => Promise<T>): Promise<{ result: T; codes: string[] }> {
    const codes: string[] = [];
    for (let i = 0; i < 3000; i++) {
      try {
        return { result: await call(), codes };
      } catch (err) {
        const code = (err as ServiceError).code;
        assert.ok(code === Code.DEADLINE_EXCEEDED || code === Code.ABORTED, `unexpected ${(err as ServiceError).details}`);
        codes.push(codeName(code));
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    throw new Error(`never finished: ${codes.slice(-5).join(", ")}`);
  }

  it("a restore and a snapshot taking longer than the deadline complete, and a retry returns them", async () => {
    const source = await createVolume(d);
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    for (let i = 0; i < 15; i++) {
      await fsp.mkdir(path.join(volumeDir(d, source), `d${i}`));
      await Promise.all(Array.from({ length: 100 }, (_, j) => fsp.writeFile(path.join(volumeDir(d, source), `d${i}`, `f${j}`), chunk)));
    }
    const expected = withoutInodes(await describeTree(volumeDir(d, source)));

    const snapReq = { name: uniqueName("snap"), sourceVolumeId: source };
    const snap = await retryUntilDone(() => d.client.controller.createSnapshot(snapReq, { timeoutMs: 20 }));
    assert.equal(snap.codes[0], "DEADLINE_EXCEEDED", "the first call outlasted its deadline");

    const volReq = {
      name: uniqueName("restore"),
      volumeCapabilities: [mountCapability()],
      volumeContentSource: { snapshot: { snapshotId: snap.result.snapshot!.snapshotId } },
    };
    const vol = await retryUntilDone(() => d.client.controller.createVolume(volReq, { timeoutMs: 20 }));
    assert.equal(vol.codes[0], "DEADLINE_EXCEEDED", "the first call outlasted its deadline");
    assert.deepEqual(withoutInodes(await describeTree(volumeDir(d, vol.result.volume!.volumeId!))), expected);
  });
});
