// Snapshots, restores and clones copy a volume faithfully, and never follow a symlink out of it.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { destroyDriver, mountCapability, startDriver, uniqueName, type DriverProcess, DIR_VOLUMES } from "./harness";
import { createSnapshot, createVolume, describeTree, snapshotDir, volumeDir, withoutInodes } from "./snapshot-helpers";

const SECRET = "a file outside the volume that no copy may contain\n";
const T1 = new Date("2001-02-03T04:05:06.789Z");
const T2 = new Date("2011-12-13T14:15:16.000Z");

/** Fill `dir` with everything a copy can get wrong; `outside` is a directory outside the volume. */
async function fill(dir: string, outside: string): Promise<void> {
  const p = (...parts: string[]) => path.join(dir, ...parts);
  await fsp.writeFile(p("plain"), "plain file\n");
  await fsp.chmod(p("plain"), 0o640);
  await fsp.chown(p("plain"), 1234, 5678);
  await fsp.writeFile(p("setuid"), "#!/bin/sh\n");
  await fsp.chmod(p("setuid"), 0o4755);
  await fsp.mkdir(p("private"));
  await fsp.writeFile(p("private", "nested"), "nested\n");
  await fsp.link(p("private", "nested"), p("hardlink"));
  await fsp.mkdir(p("empty"));
  await fsp.symlink("private/nested", p("relative-link"));
  await fsp.symlink(path.join(outside, "secret"), p("escape-file"));
  await fsp.symlink(outside, p("escape-dir"));
  await fsp.symlink("../../../../../../../../etc/passwd", p("escape-dotdot"));
  await fsp.symlink("nowhere", p("dangling"));
  await fsp.lchown(p("relative-link"), 42, 43);
  execFileSync("mkfifo", ["-m", "0620", p("fifo")]);
  for (const f of ["plain", "setuid", "private/nested", "fifo"]) await fsp.utimes(p(f), T1, T1);
  await fsp.lutimes(p("relative-link"), T2, T2);
  await fsp.chmod(p("private"), 0o700);
  await fsp.chown(p("private"), 99, 98);
  await fsp.utimes(p("private"), T2, T2);
  await fsp.chmod(dir, 0o750);
  await fsp.chown(dir, 1000, 1000);
  await fsp.utimes(dir, T1, T1);
}

describe("Faithful copies", () => {
  let d: DriverProcess;
  let source: string;
  let outside: string;
  let expected: Awaited<ReturnType<typeof describeTree>>;
  before(async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    outside = d.scratch("outside");
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(outside, "secret"), SECRET);
    source = await createVolume(d);
    await fill(volumeDir(d, source), outside);
    expected = await describeTree(volumeDir(d, source));
  });
  after(async () => destroyDriver(d));

  /** The copy equals the source entry by entry, hard links stay links, and nothing outside leaked in. */
  async function assertFaithful(dir: string): Promise<void> {
    const got = await describeTree(dir);
    assert.deepEqual(withoutInodes(got), withoutInodes(expected));
    assert.equal(got.get("hardlink")!.ino, got.get("private/nested")!.ino, "hard links are kept as links");
    for (const name of ["escape-file", "escape-dir", "escape-dotdot"]) assert.equal(got.get(name)!.type, "symlink", `${name} stays a symlink`);
    const leaked = spawnSync("grep", ["-rl", "--no-messages", "a file outside the volume", dir], { encoding: "utf8" }).stdout.trim();
    assert.equal(leaked, "", "no copy of a file outside the volume");
  }

  it("a snapshot keeps modes, owners, times, symlinks, hard links and fifos", async () => {
    await assertFaithful(snapshotDir(d, await createSnapshot(d, source)));
  });

  it("a volume restored from a snapshot is identical to the source", async () => {
    const snapshotId = await createSnapshot(d, source);
    const res = await d.client.controller.createVolume({
      name: uniqueName("restored"),
      volumeCapabilities: [mountCapability()],
      volumeContentSource: { snapshot: { snapshotId } },
    });
    await assertFaithful(volumeDir(d, res.volume!.volumeId!));
  });

  it("a clone is identical to the source", async () => {
    const res = await d.client.controller.createVolume({
      name: uniqueName("clone"),
      volumeCapabilities: [mountCapability()],
      volumeContentSource: { volume: { volumeId: source } },
    });
    await assertFaithful(volumeDir(d, res.volume!.volumeId!));
  });

  it("the outside file is untouched and the copy views are gone", async () => {
    assert.equal(await fsp.readFile(path.join(outside, "secret"), "utf8"), SECRET);
    assert.deepEqual(await fsp.readdir(path.join(d.root, "snapshots", ".views")), []);
  });
});
