/**
 * Hostile input: requests an attacker or a buggy caller could send, and a
 * driver that must not harm the machine it runs on.
 *
 * For every Node and Controller RPC that takes a path, an ID or a size,
 * fast-check builds requests from hostile pieces — "/", "/proc",
 * "/etc/passwd", "..", relative paths, symlinks to "/", a place where
 * another program has mounted something, a directory holding data, volume
 * IDs this driver never issued (shared-volume IDs naming any directory of
 * the node or another tenant's directory), negative and huge sizes — mixed
 * with real volumes and real paths. After every call:
 *
 *   - the sentinels (sentinels.ts) are exactly as they were: nothing outside
 *     the driver's root and the kubelet directory created, removed or
 *     changed, and no mount outside the kubelet directory added or removed;
 *   - any new mount is the driver's own mount of its own volume, inside the
 *     kubelet directory;
 *   - the call was answered with a gRPC status within its deadline, with a
 *     message and no stack trace;
 *   - the driver still serves (Probe answers ready).
 *
 * These tests send paths that would damage a real node, so they run only
 * inside the throwaway root (test/sandbox/throwaway-root, which `npm test`
 * uses): a tmpfs "/", fresh /proc and /dev, the host's root detached.
 * Elsewhere they skip, saying so.
 */
import assert from "node:assert/strict";
import { realpathSync, statfsSync } from "node:fs";
import * as path from "node:path";
import fc from "fast-check";
import type { ServiceError } from "@grpc/grpc-js";
import { locate, mountTable, type MountEntry } from "../../src/mount/mountinfo";
import { unmount } from "../../src/mount/syscalls";
import { encodePart } from "../../src/backends/nfs/volume-id";
import { blockCapability, destroyDriver, detachLoopsUnder, DIR_VOLUMES, mountCapability, startDriver, uniqueName, type DriverProcess, Mode } from "../sanity/harness";
import { driverMountProblems, fingerprint, mountLines, newMounts, plantSentinels, type Sentinels } from "./sentinels";

const TMPFS_MAGIC = 0x01021994;
const contained = process.env.CSI_LAB_SANDBOX === "1" && statfsSync("/").type === TMPFS_MAGIC;
const RUNS = Number(process.env.HOSTILE_RUNS ?? 60);
const DEADLINE_MS = 15_000;

const describeContained = contained ? describe : describe.skip;
if (!contained) {
  describe("Hostile input", () => {
    it("runs only inside test/sandbox/throwaway-root (npm test runs it there)", function () {
      this.skip();
    });
  });
}

describeContained("Hostile input (in a throwaway root)", function () {
  this.timeout(600_000);
  let d: DriverProcess;
  let s: Sentinels;
  let baseline: Set<string>;
  let own: { device: string; rootPrefix: string }[];
  let devFs: string | undefined;
  /** A mount the driver may make: a bind of a directory under its data/ or on the share, an image's file system, a block volume's device. */
  const isOwn = (m: MountEntry): boolean =>
    m.device.startsWith("7:") ||
    (m.device === devFs && /^\/loop\d+$/.test(m.root)) ||
    own.some((o) => m.device === o.device && (m.root === o.rootPrefix || m.root.startsWith(o.rootPrefix + "/")));
  const ids: Record<"dirVolume" | "blockVolume" | "sharedVolume" | "staged", string> = { dirVolume: "", blockVolume: "", sharedVolume: "", staged: "" };
  let stagedAt = "";

  before(async () => {
    d = await startDriver({ extraArgs: DIR_VOLUMES });
    s = plantSentinels(d);
    const create = async (caps = [mountCapability()], parameters: Record<string, string> = {}) =>
      (await d.client.controller.createVolume({ name: uniqueName("real"), volumeCapabilities: caps, parameters, capacityRange: { requiredBytes: 16 * 2 ** 20, limitBytes: 0 } })).volume!.volumeId!;
    ids.dirVolume = await create();
    ids.blockVolume = await create([blockCapability()], { capacity: "image" });
    ids.sharedVolume = await create([mountCapability(Mode.MULTI_NODE_MULTI_WRITER)], { backend: "nfs", share: d.share });
    ids.staged = await create();
    stagedAt = d.path("staged-real");
    await d.client.node.nodeStageVolume({ volumeId: ids.staged, stagingTargetPath: stagedAt, volumeCapability: mountCapability() });
    const table = mountTable();
    const place = (p: string) => locate(table, realpathSync(p))!;
    own = [
      { device: place(path.join(d.root, "data")).device, rootPrefix: place(path.join(d.root, "data")).root },
      { device: place(d.share).device, rootPrefix: place(d.share).root },
    ];
    devFs = locate(table, "/dev")?.device;
    baseline = mountLines();
  });
  after(async () => destroyDriver(d));

  /** Hostile (and some real) volume IDs. */
  const volumeIds = () =>
    fc.oneof(
      fc.constantFrom(
        ids.dirVolume,
        ids.blockVolume,
        ids.sharedVolume,
        ids.staged,
        "hp-00000000000000000000000000000000",
        "no-such-volume",
        "nfs1:d:::etc",
        "nfs1:d:::opt2,app",
        "nfs1:d:::proc",
        "nfs1:d:::",
        `nfs1:d::${encodePart(d.share.slice(1))}:other-tenant`,
        `nfs1:d::${encodePart(d.share.slice(1))}:other-tenant,data`,
        `nfs1:d::${encodePart(d.share.slice(1))}:link-to-root`,
        `nfs1:d::${encodePart(d.share.slice(1))}:link-to-root,etc`,
        `nfs1:a::${encodePart(d.share.slice(1))}:other-tenant`,
        `nfs1:d::${encodePart(d.share.slice(1))}:#0123456789abcdef0123456789abcdef`,
        `nfs1:d:nfs.example.internal:srv,share:other-tenant`,
        "nfs9:d:::etc",
        "../../etc",
        "/etc/passwd",
        "x".repeat(129),
        "",
      ),
      fc.string({ minLength: 1, maxLength: 40 }),
    );

  /** Hostile places and fresh real ones inside the kubelet directory. */
  const paths = () =>
    fc.oneof(
      { weight: 5, arbitrary: fc.constantFrom(...s.places) },
      { weight: 1, arbitrary: fc.constant(stagedAt) },
      { weight: 2, arbitrary: fc.stringMatching(/^[a-z.]{1,8}$/).map((n) => d.path("pods", n)) },
      { weight: 1, arbitrary: fc.array(fc.constantFrom("..", ".", "pods", "link-to-root", "etc", "", "proc"), { maxLength: 6 }).map((parts) => d.kubeletDir + "/" + parts.join("/")) },
    );

  const sizes = () => fc.oneof(fc.constantFrom(-1, 0, 1, 2 ** 31, 2 ** 53 - 1, Number.MAX_SAFE_INTEGER), fc.integer());
  const caps = () => fc.constantFrom(mountCapability(), blockCapability(), mountCapability(Mode.MULTI_NODE_MULTI_WRITER), mountCapability(Mode.SINGLE_NODE_WRITER, ["ro"]));

  /**
   * Run one call and check what must hold right after it: a status in time,
   * new mounts only the driver's own inside the kubelet directory, the
   * driver still ready. (The sentinels are compared once the case is undone: `scenario`.)
   */
  async function check(what: string, call: () => Promise<unknown>): Promise<void> {
    const started = Date.now();
    let status = "OK";
    try {
      await call();
    } catch (err) {
      const e = err as ServiceError;
      assert.equal(typeof e.code, "number", `${what}: not a gRPC status: ${String(err)}`);
      assert.ok(e.code !== 4, `${what}: missed its deadline`);
      assert.doesNotMatch(e.details ?? "", /\n\s+at /, `${what}: a stack trace in the reply`);
      assert.ok((e.details ?? "").length > 0, `${what}: an error without a message`);
      status = String(e.code);
    }
    assert.ok(Date.now() - started < DEADLINE_MS, `${what}: took ${Date.now() - started} ms`);
    assert.deepEqual(fingerprint(s).mounts, start.mounts, `${what} (answered ${status}) changed the mount table outside the kubelet directory`);
    assert.deepEqual(driverMountProblems(s, baseline, isOwn), [], `${what} (answered ${status})`);
    assert.equal((await d.client.identity.probe({}, { timeoutMs: DEADLINE_MS })).ready, true, `${what}: the driver stopped being ready`);
  }

  let start: ReturnType<typeof fingerprint>;
  /**
   * One case: its calls, then the undo of what legitimate calls mounted,
   * then the sentinels, / and the mount table compared with the start.
   */
  async function scenario(what: string, volumeId: string, staging: string, target: string, calls: () => Promise<void>): Promise<void> {
    // A case may legitimately unstage the staged volume it was given: stage it again (idempotent).
    await d.client.node.nodeStageVolume({ volumeId: ids.staged, stagingTargetPath: stagedAt, volumeCapability: mountCapability() });
    start = fingerprint(s);
    await calls();
    await undo(volumeId, staging, target);
    const end = fingerprint(s);
    assert.deepEqual(end.tree, start.tree, `${what} changed a sentinel`);
    assert.deepEqual(end.rootListing, start.rootListing, `${what} changed /`);
    assert.deepEqual(end.mounts, start.mounts, `${what} changed the mount table`);
  }

  /** Undo what legitimate calls of a case mounted (through the driver first, then by hand), so each case starts alike. */
  async function undo(volumeId: string, staging: string, target: string): Promise<void> {
    if (target) await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: target }, opts).catch(() => undefined);
    if (staging) await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging }, opts).catch(() => undefined);
    for (const m of newMounts(baseline)) {
      try {
        unmount(m.mountPoint, { detach: true });
      } catch {
        // gone already
      }
    }
    detachLoopsUnder(path.join(d.root, "data"), (backing) => !backing.includes(ids.blockVolume));
  }

  const opts = { timeoutMs: DEADLINE_MS };
  const run = <T>(prop: fc.IAsyncPropertyWithHooks<T>) => fc.assert(prop, { numRuns: RUNS });

  it("NodeUnpublishVolume and NodeUnstageVolume touch nothing that is not the volume's", async () => {
    await run(
      fc.asyncProperty(volumeIds(), paths(), async (volumeId, p) => {
        await scenario(`undo calls of ${volumeId} at ${JSON.stringify(p)}`, volumeId, p, p, async () => {
          await check(`NodeUnpublishVolume(${volumeId}, ${JSON.stringify(p)})`, () => d.client.node.nodeUnpublishVolume({ volumeId, targetPath: p }, opts));
          await check(`NodeUnstageVolume(${volumeId}, ${JSON.stringify(p)})`, () => d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: p }, opts));
        });
      }),
    );
  });

  it("NodeStageVolume and NodePublishVolume mount only the volume, only inside the kubelet directory", async () => {
    await run(
      fc.asyncProperty(volumeIds(), paths(), paths(), caps(), fc.boolean(), async (volumeId, staging, target, cap, ephemeral) => {
        const volumeContext: Record<string, string> = ephemeral ? { "csi.storage.k8s.io/ephemeral": "true" } : {};
        await scenario(`stage/publish of ${volumeId} at ${JSON.stringify(staging)} → ${JSON.stringify(target)}`, volumeId, staging, target, async () => {
          await check(`NodeStageVolume(${volumeId}, ${JSON.stringify(staging)})`, () =>
            d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: cap, volumeContext }, opts),
          );
          await check(`NodePublishVolume(${volumeId}, ${JSON.stringify(staging)} → ${JSON.stringify(target)})`, () =>
            d.client.node.nodePublishVolume({ volumeId, stagingTargetPath: ephemeral ? "" : staging, targetPath: target, volumeCapability: cap, volumeContext }, opts),
          );
        });
      }),
    );
  });

  it("NodeGetVolumeStats and NodeExpandVolume look only where the volume is", async () => {
    await run(
      fc.asyncProperty(volumeIds(), paths(), sizes(), async (volumeId, p, size) => {
        await scenario(`stats/expand of ${volumeId} at ${JSON.stringify(p)}`, volumeId, "", "", async () => {
          await check(`NodeGetVolumeStats(${volumeId}, ${JSON.stringify(p)})`, () => d.client.node.nodeGetVolumeStats({ volumeId, volumePath: p }, opts));
          await check(`NodeExpandVolume(${volumeId}, ${JSON.stringify(p)}, ${size})`, () =>
            d.client.node.nodeExpandVolume({ volumeId, volumePath: p, capacityRange: { requiredBytes: size, limitBytes: 0 } }, opts),
          );
        });
      }),
    );
  });

  it("DeleteVolume, DeleteSnapshot and the other controller calls with crafted IDs delete and change nothing", async () => {
    await run(
      fc.asyncProperty(volumeIds(), sizes(), async (volumeId, size) => {
        // The real volumes stay: deleting them is legitimate, but then later cases would find them gone.
        if (Object.values(ids).includes(volumeId)) return;
        await scenario(`controller calls on ${volumeId}`, volumeId, "", "", async () => {
          await check(`DeleteVolume(${volumeId})`, () => d.client.controller.deleteVolume({ volumeId }, opts));
          await check(`DeleteSnapshot(${volumeId})`, () => d.client.controller.deleteSnapshot({ snapshotId: volumeId }, opts));
          await check(`ControllerExpandVolume(${volumeId}, ${size})`, () => d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: size, limitBytes: 0 } }, opts));
          await check(`ControllerModifyVolume(${volumeId})`, () => d.client.controller.controllerModifyVolume({ volumeId, mutableParameters: { mode: "0777" } }, opts));
          await check(`CreateSnapshot(${volumeId})`, () => d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: volumeId }, opts));
          await check(`ControllerGetVolume(${volumeId})`, () => d.client.controller.controllerGetVolume({ volumeId }, opts));
        });
      }),
    );
  });

  it("CreateVolume with hostile shares, subDirs and sizes never adopts or escapes", async () => {
    const shares = fc.constantFrom("/", "/etc", "/proc", "/sentinel", d.share, path.join(d.share, "link-to-root"), `${d.share}/../..`, d.root, d.kubeletDir, "relative");
    const subDirs = fc.constantFrom("other-tenant", "other-tenant/data", "link-to-root/etc", "link-to-sentinel/file", "link-to-root", "..", "a/../../b", ".csi-lab/volumes", "fresh-" + process.pid);
    await run(
      fc.asyncProperty(shares, subDirs, sizes(), fc.constantFrom("nfs", "hostpath"), async (share, subDir, size, backend) => {
        const what = `CreateVolume(backend ${backend}, share ${share}, subDir ${subDir}, ${size} bytes)`;
        await scenario(what, "", "", "", () =>
          check(what, () =>
            d.client.controller.createVolume(
              {
                name: uniqueName("hostile"),
                volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)],
                parameters: { backend, share, subDir },
                capacityRange: { requiredBytes: size, limitBytes: 0 },
              },
              opts,
            ),
          ),
        );
      }),
    );
  });
});
