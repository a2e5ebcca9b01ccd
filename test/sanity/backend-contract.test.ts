// What every backend does the same: grow, snapshot and restore, clone, and survive the driver's
// restart with its mounts — run for each backend in test/sanity/backends.ts (a new backend is a line there).
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { BACKENDS } from "./backends";
import { destroyDriver, isMounted, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

const MiB = 1024 * 1024;

for (const b of BACKENDS) {
  describe(`The backend contract (${b.name})`, () => {
    let d: DriverProcess;
    before(async () => (d = await startDriver()));
    after(async () => destroyDriver(d));

    const create = async (extra: { size?: number; source?: { snapshotId?: string; volumeId?: string } } = {}) =>
      (
        await d.client.controller.createVolume({
          name: uniqueName(b.name),
          volumeCapabilities: [mountCapability(b.multiNode ? Mode.MULTI_NODE_MULTI_WRITER : Mode.SINGLE_NODE_MULTI_WRITER)],
          capacityRange: { requiredBytes: extra.size ?? 64 * MiB, limitBytes: 0 },
          parameters: b.parameters(d),
          ...(extra.source?.snapshotId ? { volumeContentSource: { snapshot: { snapshotId: extra.source.snapshotId } } } : {}),
          ...(extra.source?.volumeId ? { volumeContentSource: { volume: { volumeId: extra.source.volumeId } } } : {}),
        })
      ).volume!;

    /** Stage and publish `volumeId`; returns the pod's target and an undo. */
    async function mounted(volumeId: string, volumeContext: Record<string, string> = {}) {
      const cap = mountCapability(b.multiNode ? Mode.MULTI_NODE_MULTI_WRITER : Mode.SINGLE_NODE_MULTI_WRITER);
      const staging = d.path(uniqueName("stage"));
      const target = d.path(uniqueName("pod"));
      await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: cap, volumeContext });
      await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: cap, volumeContext });
      const undo = async () => {
        await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target });
        await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
      };
      return { staging, target, undo, cap };
    }

    it("grows: ControllerExpandVolume, then NodeExpandVolume where it is mounted; the record says the new size", async () => {
      const v = await create();
      const m = await mounted(v.volumeId!, v.volumeContext);
      const grown = await d.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 128 * MiB, limitBytes: 0 } });
      assert.ok(grown.capacityBytes! >= 128 * MiB);
      const expand = (target: string) => d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: target, capacityRange: { requiredBytes: 128 * MiB, limitBytes: 0 } });
      let current = m;
      try {
        await expand(current.target);
      } catch (err) {
        // An ext4 image cannot grow while mounted without CAP_SYS_RESOURCE: it grows at the next stage.
        if (!/CAP_SYS_RESOURCE/.test((err as Error).message)) throw err;
        await current.undo();
        current = await mounted(v.volumeId!, v.volumeContext);
        await expand(current.target);
      }
      const { volume } = await d.client.controller.controllerGetVolume({ volumeId: v.volumeId });
      assert.ok(volume!.capacityBytes! >= 128 * MiB);
      await current.undo();
      await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    });

    it("a snapshot of a volume in use restores to a new volume with the same files, and so does a clone", async () => {
      const v = await create();
      const m = await mounted(v.volumeId!, v.volumeContext);
      await fsp.writeFile(path.join(m.target, "kept"), "written before the snapshot");
      const snap = (await d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: v.volumeId })).snapshot!;
      await fsp.writeFile(path.join(m.target, "later"), "written after");
      for (const source of [{ snapshotId: snap.snapshotId! }, { volumeId: v.volumeId! }]) {
        const copy = await create({ source });
        const c = await mounted(copy.volumeId!, copy.volumeContext);
        assert.equal(await fsp.readFile(path.join(c.target, "kept"), "utf8"), "written before the snapshot");
        assert.equal((await fsp.readdir(c.target)).includes("later"), source.volumeId !== undefined, "a snapshot is a point in time; a clone is now");
        await c.undo();
        await d.client.controller.deleteVolume({ volumeId: copy.volumeId });
      }
      await m.undo();
      await d.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId });
      await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    });

    it("survives the driver's restart: the volume, its mounts and its data are recognised, and every clean-up works", async () => {
      const v = await create();
      const m = await mounted(v.volumeId!, v.volumeContext);
      await fsp.writeFile(path.join(m.target, "data"), "before the restart");
      await d.restart();
      const { volume } = await d.client.controller.controllerGetVolume({ volumeId: v.volumeId });
      assert.equal(volume!.volumeId, v.volumeId);
      // A new pod on the same staged volume, and the old pod's data intact.
      const second = d.path(uniqueName("pod"));
      await d.client.node.nodePublishVolume({ volumeId: v.volumeId, stagingTargetPath: m.staging, targetPath: second, volumeCapability: m.cap, volumeContext: v.volumeContext });
      assert.equal(await fsp.readFile(path.join(second, "data"), "utf8"), "before the restart");
      await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: second });
      await m.undo();
      assert.equal(await isMounted(m.staging), false);
      await d.client.controller.deleteVolume({ volumeId: v.volumeId });
    });
  });
}
