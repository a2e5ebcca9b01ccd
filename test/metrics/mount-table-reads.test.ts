// The whole mount table costs time that grows with the node's mounts, and
// csi_lab_mount_table_reads_total counts how often the driver has the
// kernel hand it over; a read answered from an unchanged table is not one,
// so each step here follows a change of the table.
//
// Where the kernel reports each mount attached and detached (Linux 6.15,
// src/mount/mount-events.ts), the table is listed once at the start and
// kept from those reports: no call reads it again.
//
// Where it does not (here: a seccomp filter refuses those calls, as an
// older runtime's profile would), the table is read as text when it has
// changed. Undoing a stage or a publish of a directory or image volume, its
// stats, staging a directory volume, and publishing one for an access mode
// that allows many workloads are then settled by statx at the path
// (src/mount/mount-root.ts), not by the table. NodePublishVolume for a
// one-workload mode (SINGLE_NODE_WRITER) still reads it once: its
// second-target check looks at every mount of the volume, which also shows
// the counter counts; so does staging an image (is its loop device already
// mounted elsewhere?).
import { strict as assert } from "node:assert";
import { mkdir } from "node:fs/promises";
import * as path from "node:path";
import { mountFs, unmount } from "../../src/mount/syscalls";
import { isMounted, Mode, mountCapability } from "../sanity/harness";
import { filterWorksHere, MOUNT_EVENT_CALLS, oldSeccompEnv } from "../sanity/old-seccomp";
import { createVolumeRequest, get, sample, useDriverWithMetrics } from "./driver-process";

for (const variant of [
  { title: "kept by mount events", env: undefined, events: true },
  { title: "read as text (mount-event calls refused)", env: oldSeccompEnv(MOUNT_EVENT_CALLS), events: false },
]) describe(`metrics: whole mount-table reads, ${variant.title}`, () => {
  const live = useDriverWithMetrics(variant.env);

  before(function () {
    if (!variant.events && !filterWorksHere) this.skip();
    const source = live.driver.ready.mountTable;
    // A kernel before 6.15 reads the text either way: the second variant says all there is.
    if (variant.events && source !== "events") this.skip();
    assert.equal(source, variant.events ? "events" : "mountinfo", "the driver says how it knows its mount table");
  });

  async function tableReads(): Promise<number> {
    const n = sample((await get(live.driver.httpBase, "/metrics")).body, "csi_lab_mount_table_reads_total");
    assert.ok(n !== undefined, "csi_lab_mount_table_reads_total is on the page");
    return n;
  }

  for (const { title, parameters, mode, ...reads } of [
    { title: "a directory volume", parameters: {}, stageReads: 0, mode: Mode.SINGLE_NODE_WRITER, publishReads: 1 },
    { title: "an image volume", parameters: { capacity: "image" }, stageReads: 1, mode: Mode.SINGLE_NODE_WRITER, publishReads: 1 },
    // Kubernetes' ReadWriteOnce: no other target can make a publish a refusal, so it looks at its own path only.
    { title: "a directory volume used as ReadWriteOnce (SINGLE_NODE_MULTI_WRITER)", parameters: {}, stageReads: 0, mode: Mode.SINGLE_NODE_MULTI_WRITER, publishReads: 0 },
  ]) {
    const stageReads = variant.events ? 0 : reads.stageReads;
    const publishReads = variant.events ? 0 : reads.publishReads;
    it(`${title}: stats, unpublish and unstage read no mount table; stage reads ${stageReads}, publish ${publishReads}`, async function () {
      this.timeout(60_000);
      const name = `table-reads-${variant.events}-${Object.keys(parameters).length}-${mode}`;
      const volumeCapability = mountCapability(mode);
      const { volume } = await live.client.controller.createVolume({ ...createVolumeRequest(name, 16 * 1024 * 1024), volumeCapabilities: [volumeCapability], parameters });
      const volumeId = volume!.volumeId;
      const stagingTargetPath = path.join(live.driver.dir, "kubelet", `${name}-staging`);
      const targetPath = path.join(live.driver.dir, "kubelet", `${name}-target`);
      // Someone else's mount comes and goes: the table has changed since the driver last read it.
      const elsewhere = path.join(live.driver.dir, "kubelet", `${name}-elsewhere`);
      await mkdir(elsewhere);
      mountFs("elsewhere", elsewhere, "tmpfs", 0, "size=1m");
      unmount(elsewhere);
      const beforeStage = await tableReads();
      await live.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability, publishContext: {}, volumeContext: {}, secrets: {} });
      const beforePublish = await tableReads();
      assert.equal(beforePublish, beforeStage + stageReads, `NodeStageVolume read the table ${beforePublish - beforeStage} times`);

      await live.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability, readonly: false, publishContext: {}, volumeContext: {}, secrets: {} });
      const afterPublish = await tableReads();
      assert.equal(afterPublish, beforePublish + publishReads, `NodePublishVolume read the table ${afterPublish - beforePublish} times`);
      assert.ok(await isMounted(targetPath));

      const stats = await live.client.node.nodeGetVolumeStats({ volumeId, volumePath: targetPath, stagingTargetPath });
      assert.ok((stats.usage ?? []).length > 0);
      await live.client.node.nodeUnpublishVolume({ volumeId, targetPath });
      await live.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
      assert.equal(await tableReads(), afterPublish, "no table read for the stats, nor to undo the publish and the stage");
      assert.equal(await isMounted(targetPath), false);
      assert.equal(await isMounted(stagingTargetPath), false);
      await live.client.controller.deleteVolume({ volumeId, secrets: {} });
    });
  }
});
