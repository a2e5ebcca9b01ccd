// The disk is the truth: restarts and kill -9 lose nothing and leave nothing half-made.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { destroyDriver, DIR_VOLUMES, isMounted, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { NFS_LOCAL } from "./backends";
import { crashEnv } from "./crash-hook";

describe("Restart and crash", () => {
  let d: DriverProcess;
  beforeEach(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  afterEach(async () => destroyDriver(d));

  it("a restarted driver still has every volume, and its mounts", async () => {
    const names = [uniqueName(), uniqueName(), uniqueName()];
    const ids: string[] = [];
    for (const name of names) ids.push((await d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()] })).volume!.volumeId!);
    const staging = d.path("stage");
    const target = d.path("target");
    await d.client.node.nodeStageVolume({ volumeId: ids[0], stagingTargetPath: staging, volumeCapability: mountCapability() });
    await d.client.node.nodePublishVolume({ volumeId: ids[0], stagingTargetPath: staging, targetPath: target, volumeCapability: mountCapability() });
    await fsp.writeFile(path.join(target, "data"), "survives");

    await d.restart();

    const listed = (await d.client.controller.listVolumes({})).entries!.map((e) => e.volume!.volumeId);
    assert.deepEqual(new Set(listed), new Set(ids));
    // Idempotent re-publish is recognised from the kernel's mount table, not from memory.
    await d.client.node.nodePublishVolume({ volumeId: ids[0], stagingTargetPath: staging, targetPath: target, volumeCapability: mountCapability() });
    assert.equal(await fsp.readFile(path.join(target, "data"), "utf8"), "survives");
    // Same name after restart → same volume.
    const again = await d.client.controller.createVolume({ name: names[1], volumeCapabilities: [mountCapability()] });
    assert.equal(again.volume!.volumeId, ids[1]);
    await d.client.node.nodeUnpublishVolume({ volumeId: ids[0], targetPath: target });
    await d.client.node.nodeUnstageVolume({ volumeId: ids[0], stagingTargetPath: staging });
    assert.equal(await isMounted(target), false);
  });

  it("kill -9 in the middle of many creates and deletes leaves only whole volumes", async () => {
    const names = Array.from({ length: 60 }, () => uniqueName("crash"));
    const calls = names.map((name, i) =>
      d.client.controller
        .createVolume({ name, volumeCapabilities: [mountCapability()] })
        .then((r) => (i % 3 === 0 ? d.client.controller.deleteVolume({ volumeId: r.volume!.volumeId }) : undefined))
        .catch(() => undefined),
    );
    // Let some of them land, then pull the plug.
    await new Promise((r) => setTimeout(r, 30));
    d.proc.kill("SIGKILL");
    await Promise.all(calls);
    await d.exit;

    // As if killed between a metadata file's fsync and its rename.
    await fsp.writeFile(path.join(d.root, "volumes", ".hp-0123.json.0a1b2c3d4e5f.tmp"), "{}");

    await d.start();
    // .tmp and .trash were swept at start-up, and unrenamed metadata files.
    assert.deepEqual(await fsp.readdir(path.join(d.root, ".tmp")), []);
    assert.deepEqual(await fsp.readdir(path.join(d.root, ".trash")), []);
    const metas = await fsp.readdir(path.join(d.root, "volumes"));
    assert.deepEqual(metas.filter((f) => f.startsWith(".")), []);
    // Every volume directory that exists is whole: its metadata parses and names a real volume.
    for (const file of metas) {
      const id = file.replace(/\.json$/, "");
      const meta = JSON.parse(await fsp.readFile(path.join(d.root, "volumes", file), "utf8"));
      assert.equal(meta.volumeId, id);
      assert.ok((await fsp.stat(path.join(d.root, "data", id))).isDirectory());
    }
    // ...and no data directory is left without its metadata.
    assert.deepEqual((await fsp.readdir(path.join(d.root, "data"))).sort(), metas.map((f) => f.replace(/\.json$/, "")).sort());
    // And retrying every create converges: each name gets exactly one volume.
    const ids = new Set<string>();
    for (const name of names) ids.add((await d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()] })).volume!.volumeId!);
    assert.equal(ids.size, names.length);
    assert.equal((await fsp.readdir(path.join(d.root, "data"))).length, names.length);
  });

  it("a delete that cannot move the volume's data away keeps the volume whole, also for a record from before identities", async () => {
    for (const older of [false, true]) {
      const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
      const data = path.join(d.root, "data", volumeId);
      const record = path.join(d.root, "volumes", `${volumeId}.json`);
      await fsp.writeFile(path.join(data, "mine"), "the volume's");
      if (older) {
        // Such a record lost its record first (the old order), and a failed move left its content without it.
        const { dataIdentity: _, ...rest } = JSON.parse(await fsp.readFile(record, "utf8"));
        await fsp.writeFile(record, JSON.stringify(rest));
      }
      // The move into .trash, the delete's commit point, fails.
      const trash = path.join(d.root, ".trash");
      await fsp.rm(trash, { recursive: true });
      await fsp.writeFile(trash, "");
      await assert.rejects(d.client.controller.deleteVolume({ volumeId }));
      await fsp.rm(trash);
      await fsp.mkdir(trash);
      assert.ok((await d.client.controller.controllerGetVolume({ volumeId })).volume, "the volume still exists");
      assert.equal(await fsp.readFile(path.join(data, "mine"), "utf8"), "the volume's", "with its content");

      await d.client.controller.deleteVolume({ volumeId }); // the retry
      assert.equal(existsSync(data), false);
      assert.equal(existsSync(record), false);
    }
  });

  it("a create killed just after its commit point is whole at the next start", async () => {
    // This driver dies right after the first volume record it commits; its data is still in .tmp.
    await destroyDriver(d);
    d = await startDriver({ extraArgs: DIR_VOLUMES, env: crashEnv("rename", "/volumes/hp-[0-9a-f]{32}\\.json$") });
    const req = { name: uniqueName(), volumeCapabilities: [mountCapability()] };
    await assert.rejects(d.client.controller.createVolume(req));
    await d.exit;
    assert.equal((await fsp.readdir(path.join(d.root, ".tmp"))).length, 1, "its data is in .tmp");
    d.opts.env = process.env;
    await d.start();

    const volumeId = (await d.client.controller.createVolume(req)).volume!.volumeId!;
    assert.deepEqual(await fsp.readdir(path.join(d.root, "data")), [volumeId], "put in place by the sweep");
    assert.deepEqual(await fsp.readdir(path.join(d.root, ".tmp")), []);
  });

  it("record files a crash left half-written (temporaries before their rename) are removed at start, in every store", async () => {
    await d.stop();
    const dirs = ["volumes", "snapshots/meta", "snapshots/groups", "memory/volumes", "shared", "attachments"].map((p) => path.join(d.root, p));
    for (const dir of dirs) await fsp.writeFile(path.join(dir, ".0123.json.f00d.tmp"), '{"half');
    await d.start();
    for (const dir of dirs) assert.deepEqual(await fsp.readdir(dir), [], `${dir} holds no temporary`);
  });

  it("a stale socket left by a killed driver is replaced on start", async () => {
    d.proc.kill("SIGKILL");
    await d.exit;
    assert.ok((await fsp.lstat(d.socket)).isSocket(), "the killed driver left its socket behind");
    await d.start();
    assert.equal((await d.client.identity.probe({})).ready, true);
  });

  it("a snapshot whose record cannot be read: the driver starts, warns naming it, keeps its content, lists the others", async () => {
    const v = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!;
    const [a, b] = [await snap(v.volumeId!), await snap(v.volumeId!)];
    // What a disk error or a hand edit could leave: the driver's own writes never do.
    await fsp.writeFile(path.join(d.root, "snapshots", "meta", `${a}.json`), "{ not json");
    await d.restart();
    const warned = d.jsonLogs().filter((l) => l.level === "warn" && l.snapshotId === a);
    assert.equal(warned.length, 1, "one warning names it");
    assert.match(String(warned[0]!.problem), /not valid JSON/);
    assert.deepEqual(((await d.client.controller.listSnapshots({})).entries ?? []).map((e) => e.snapshot!.snapshotId), [b]);
    assert.ok((await fsp.stat(path.join(d.root, "snapshots", "data", a))).isDirectory(), "its content is kept");
  });

  async function snap(sourceVolumeId: string): Promise<string> {
    return (await d.client.controller.createSnapshot({ sourceVolumeId, name: uniqueName("snap") })).snapshot!.snapshotId!;
  }
});

describe("Restart (nfs)", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  it("a restarted driver still lists its shared volumes, recognises their mounts and answers retries with the same volume", async () => {
    const name = uniqueName("pvc");
    const req = { name, volumeCapabilities: [mountCapability()], parameters: NFS_LOCAL.parameters(d) };
    const v = (await d.client.controller.createVolume(req)).volume!;
    const staging = d.path("stage");
    const target = d.path("target");
    const cap = mountCapability();
    await d.client.node.nodeStageVolume({ volumeId: v.volumeId, volumeContext: v.volumeContext, stagingTargetPath: staging, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId: v.volumeId, volumeContext: v.volumeContext, stagingTargetPath: staging, targetPath: target, volumeCapability: cap });
    await fsp.writeFile(path.join(target, "data"), "survives");

    await d.restart();

    assert.deepEqual((await d.client.controller.listVolumes({})).entries!.map((e) => e.volume!.volumeId), [v.volumeId]);
    assert.equal((await d.client.controller.createVolume(req)).volume!.volumeId, v.volumeId);
    // Recognised from the kernel's mount table (a bind of the share's directory), not from memory.
    await d.client.node.nodeStageVolume({ volumeId: v.volumeId, volumeContext: v.volumeContext, stagingTargetPath: staging, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId: v.volumeId, volumeContext: v.volumeContext, stagingTargetPath: staging, targetPath: target, volumeCapability: cap });
    assert.equal((await d.client.node.nodeGetVolumeStats({ volumeId: v.volumeId, volumePath: target })).volumeCondition!.abnormal ?? false, false);
    assert.equal(await fsp.readFile(path.join(target, "data"), "utf8"), "survives");
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: target });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: staging });
    assert.equal(await isMounted(staging), false);
  });
});
