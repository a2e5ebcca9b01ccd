// The start-up sweep removes what interrupted calls left (content in .tmp
// and .trash). One that will not go — a
// file made immutable, say — must not keep the driver from starting: in a
// DaemonSet that is a crash loop on the node. It stays, a warning names it,
// and a later start removes it once it can. (A volume's or a snapshot's data
// without a record is not a leftover of this driver's: hostpath-foreign-data.test.ts,
// snapshot-identity.test.ts.)
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { destroyDriver, startDriver, type DriverProcess } from "./harness";

describe("Start-up with a leftover that cannot be removed", function () {
  this.timeout(60_000);
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => {
    try {
      unpin(); // wherever the sweep moved them, or the driver's directory cannot be removed
    } finally {
      await destroyDriver(d);
    }
  });

  /** Make every file this test pinned under the driver's directory mutable again. */
  function unpin(): void {
    execFileSync("find", [d.dir, "-xdev", "-name", "pinned", "-type", "f", "-exec", "chattr", "-i", "{}", ";"]);
  }

  /** A tree at `dir` holding one immutable file: rm fails on it (EPERM), even as root. */
  async function leftover(dir: string): Promise<void> {
    await fsp.mkdir(dir, { recursive: true });
    const f = path.join(dir, "pinned");
    await fsp.writeFile(f, "x");
    execFileSync("chattr", ["+i", f]);
  }

  it("starts all the same, names each in a warning, and removes them at a later start", async () => {
    const places = [
      path.join(d.root, ".trash", "hp-00000000000000000000000000000001.leftover"),
      path.join(d.root, ".tmp", "hp-00000000000000000000000000000002.leftover"),
      path.join(d.root, "snapshots", ".trash", "snap-00000000000000000000000000000004.leftover"),
      path.join(d.root, "snapshots", ".tmp", "snap-00000000000000000000000000000005.leftover"),
    ];
    for (const p of places) await leftover(p);
    d.logs.length = 0;
    await d.restart(); // fails ("did not become ready") if the sweep stops the start
    assert.equal((await d.client.identity.probe({})).ready, true);
    const warned = d.jsonLogs().filter((l) => l.level === "warn" && /could not be removed/.test(String(l.msg)));
    for (const p of places) {
      assert.ok(
        warned.some((l) => String(l.path).startsWith(p) || String(l.path).includes(path.basename(p))),
        `no warning names ${p}: ${JSON.stringify(warned)}`,
      );
    }

    unpin();
    await d.restart();
    for (const p of places) assert.equal(existsSync(p), false, `${p} is still there`);
  });
});
