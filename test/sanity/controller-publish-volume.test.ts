// ControllerPublishVolume (attach, --enable-attach): bookkeeping the CO can trust, with the spec's error codes.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { ControllerServiceCapability_RPC_Type as Cap } from "../../src/gen/csi";
import { Code, destroyDriver, expectCode, literal, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("ControllerPublishVolume", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: ["--enable-attach"] })));
  after(async () => destroyDriver(d));

  const newVolume = async () =>
    (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
  const publish = (volumeId: string, extra: { nodeId?: string; readonly?: boolean; mode?: Mode } = {}) =>
    d.client.controller.controllerPublishVolume({
      volumeId,
      nodeId: extra.nodeId ?? d.nodeId,
      volumeCapability: mountCapability(extra.mode),
      readonly: extra.readonly ?? false,
    });

  it("is advertised with PUBLISH_READONLY and LIST_VOLUMES_PUBLISHED_NODES", async () => {
    const caps = (await d.client.controller.controllerGetCapabilities({})).capabilities!.map((c) => c.rpc!.type);
    for (const c of [Cap.PUBLISH_UNPUBLISH_VOLUME, Cap.PUBLISH_READONLY, Cap.LIST_VOLUMES_PUBLISHED_NODES]) assert.ok(caps.includes(c), Cap[c]);
  });

  it("attaches the volume to this node, records it on disk and returns a publish_context naming the node", async () => {
    const id = await newVolume();
    const res = await publish(id);
    assert.deepEqual(res.publishContext, { "csi-lab/attached-node": d.nodeId, "csi-lab/attached-readonly": "false" });
    const onDisk = JSON.parse(await fsp.readFile(path.join(d.root, "attachments", `${id}.json`), "utf8"));
    assert.equal(onDisk.attachments[0].nodeId, d.nodeId);
    await d.client.controller.controllerUnpublishVolume({ volumeId: id, nodeId: d.nodeId });
  });

  it("is idempotent: the same call again answers OK with the same publish_context", async () => {
    const id = await newVolume();
    const first = await publish(id, { readonly: true });
    const second = await publish(id, { readonly: true });
    assert.deepEqual(second.publishContext, first.publishContext);
    assert.equal(first.publishContext!["csi-lab/attached-readonly"], "true");
    await d.client.controller.controllerUnpublishVolume({ volumeId: id, nodeId: d.nodeId });
  });

  it("with a different readonly flag or capability on the same node answers ALREADY_EXISTS", async () => {
    const id = await newVolume();
    await publish(id);
    await expectCode(publish(id, { readonly: true }), Code.ALREADY_EXISTS, /already attached/);
    await expectCode(publish(id, { mode: Mode.SINGLE_NODE_MULTI_WRITER }), Code.ALREADY_EXISTS);
    await d.client.controller.controllerUnpublishVolume({ volumeId: id, nodeId: d.nodeId });
  });

  it("of an unknown volume answers NOT_FOUND", async () => {
    await expectCode(publish("hp-00000000000000000000000000000000"), Code.NOT_FOUND, /volume/);
    await expectCode(publish("not-one-of-ours"), Code.NOT_FOUND);
  });

  it("to a node other than this driver's answers NOT_FOUND, and records nothing", async () => {
    const id = await newVolume();
    await expectCode(publish(id, { nodeId: "some-other-node" }), Code.NOT_FOUND, /node some-other-node does not exist/);
    assert.deepEqual((await d.client.controller.controllerGetVolume({ volumeId: id })).status!.publishedNodeIds, []);
  });

  it("with missing or malformed fields answers INVALID_ARGUMENT", async () => {
    const id = await newVolume();
    await expectCode(d.client.controller.controllerPublishVolume({ nodeId: d.nodeId, volumeCapability: mountCapability() }), Code.INVALID_ARGUMENT, /volume_id/);
    await expectCode(d.client.controller.controllerPublishVolume({ volumeId: id, volumeCapability: mountCapability() }), Code.INVALID_ARGUMENT, /node_id/);
    await expectCode(d.client.controller.controllerPublishVolume({ volumeId: id, nodeId: d.nodeId }), Code.INVALID_ARGUMENT, /volume_capability/);
    await expectCode(
      d.client.controller.controllerPublishVolume({ volumeId: id, nodeId: d.nodeId, volumeCapability: mountCapability(Mode.MULTI_NODE_MULTI_WRITER) }),
      Code.INVALID_ARGUMENT,
      /access mode/,
    );
    await expectCode(d.client.controller.controllerPublishVolume({ volumeId: id, nodeId: "../x", volumeCapability: mountCapability() }), Code.INVALID_ARGUMENT);
  });

  it("DeleteVolume of an attached volume answers FAILED_PRECONDITION naming the node", async () => {
    const id = await newVolume();
    await publish(id);
    await expectCode(d.client.controller.deleteVolume({ volumeId: id }), Code.FAILED_PRECONDITION, new RegExp(`attached to node ${literal(d.nodeId)}`));
    await d.client.controller.controllerUnpublishVolume({ volumeId: id, nodeId: d.nodeId });
    await d.client.controller.deleteVolume({ volumeId: id });
    await assert.rejects(fsp.access(path.join(d.root, "attachments", `${id}.json`)));
  });
});

describe("ControllerPublishVolume across restarts", () => {
  let d: DriverProcess | undefined;
  afterEach(async () => destroyDriver(d));

  it("an attachment survives kill -9; the volume then moved to a renamed node answers FAILED_PRECONDITION naming the old node", async () => {
    d = await startDriver({ nodeId: "node-a", extraArgs: ["--enable-attach"] });
    const id = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
    await d.client.controller.controllerPublishVolume({ volumeId: id, nodeId: "node-a", volumeCapability: mountCapability() });
    d.proc.kill("SIGKILL");
    await d.exit;
    await d.start();
    assert.deepEqual((await d.client.controller.controllerGetVolume({ volumeId: id })).status!.publishedNodeIds, ["node-a"]);

    // The same root served under a new node name: node-a's attachment is still on record.
    await d.stop();
    d = await startDriver({ dir: d.dir, nodeId: "node-b", extraArgs: ["--enable-attach"] });
    await expectCode(
      d.client.controller.controllerPublishVolume({ volumeId: id, nodeId: "node-b", volumeCapability: mountCapability() }),
      Code.FAILED_PRECONDITION,
      /attached to node node-a/,
    );
    // Detaching from node-a works although node-a is not this node; then node-b may attach it.
    await d.client.controller.controllerUnpublishVolume({ volumeId: id, nodeId: "node-a" });
    await d.client.controller.controllerPublishVolume({ volumeId: id, nodeId: "node-b", volumeCapability: mountCapability() });
  });

  it("records of volumes that no longer exist, and half-written records, are swept at start-up", async () => {
    d = await startDriver({ extraArgs: ["--enable-attach"] });
    const dir = path.join(d.root, "attachments");
    const orphan = { version: 1, volumeId: "hp-0123456789abcdef0123456789abcdef", attachments: [] };
    await fsp.writeFile(path.join(dir, `${orphan.volumeId}.json`), JSON.stringify(orphan));
    await fsp.writeFile(path.join(dir, ".hp-0123456789abcdef0123456789abcdef.json.0a1b2c.tmp"), "{");
    await d.restart();
    assert.deepEqual(await fsp.readdir(dir), []);
  });

  it("a damaged record of a shared volume's attachment does not stop the driver: it is named in a warning and kept", async () => {
    d = await startDriver({ extraArgs: ["--enable-attach"] });
    const id = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
    await d.client.controller.controllerPublishVolume({ volumeId: id, nodeId: d.nodeId, volumeCapability: mountCapability() });
    await d.stop();
    // Shared volumes' records are named by a hash of the ID, which only the file's contents give back.
    const damaged = ['{"version": 1, "volu', "null", '{"version": 1}'].map((body, i) => ({ file: `nfs-${String(i).repeat(32)}.json`, body }));
    const dir = path.join(d.root, "attachments");
    for (const { file, body } of damaged) await fsp.writeFile(path.join(dir, file), body);
    await d.start();
    for (const { file } of damaged) assert.ok(d.logs.some((l) => l.includes("unreadable attachment record") && l.includes(file)), `a warning names ${file}`);
    assert.deepEqual((await fsp.readdir(dir)).sort(), [`${id}.json`, ...damaged.map((x) => x.file)].sort(), "kept for a person to look at");
    assert.deepEqual((await d.client.controller.controllerGetVolume({ volumeId: id })).status!.publishedNodeIds, [d.nodeId]);
  });

  it("a volume attached while attach was on can be deleted after it is switched off, records and all", async () => {
    d = await startDriver({ extraArgs: ["--enable-attach"] });
    const id = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
    await d.client.controller.controllerPublishVolume({ volumeId: id, nodeId: d.nodeId, volumeCapability: mountCapability() });
    await d.stop();
    d = await startDriver({ dir: d.dir });
    assert.deepEqual((await d.client.controller.controllerGetVolume({ volumeId: id })).status!.publishedNodeIds, []);
    await d.client.controller.deleteVolume({ volumeId: id });
    assert.deepEqual(await fsp.readdir(path.join(d.root, "attachments")), []);
  });

  it("without --enable-attach the attach RPCs answer UNIMPLEMENTED and are not advertised", async () => {
    d = await startDriver();
    const caps = (await d.client.controller.controllerGetCapabilities({})).capabilities!.map((c) => c.rpc!.type);
    assert.ok(!caps.includes(Cap.PUBLISH_UNPUBLISH_VOLUME));
    assert.ok(!caps.includes(Cap.LIST_VOLUMES_PUBLISHED_NODES));
    const id = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
    await expectCode(
      d.client.controller.controllerPublishVolume({ volumeId: id, nodeId: d.nodeId, volumeCapability: mountCapability() }),
      Code.UNIMPLEMENTED,
      /--enable-attach/,
    );
    await expectCode(d.client.controller.controllerUnpublishVolume({ volumeId: id, nodeId: d.nodeId }), Code.UNIMPLEMENTED);
  });
});
