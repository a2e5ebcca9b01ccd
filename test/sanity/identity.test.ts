// Identity service: who the plugin is, what it offers, whether it is ready.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { PluginCapability_Service_Type as ServiceType, PluginCapability_VolumeExpansion_Type as ExpansionType } from "../../src/gen/csi";
import { MS } from "../../src/mount/options";
import { bindMount, remountBind, unmount } from "../../src/mount/syscalls";
import { version } from "../../src/server/version";
import { destroyDriver, startDriver, type DriverProcess } from "./harness";

describe("Identity", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  it("GetPluginInfo answers the driver name and the package.json version", async () => {
    const info = await d.client.identity.getPluginInfo({});
    assert.equal(info.name, "csi-lab.example.org");
    assert.equal(info.vendorVersion, version);
    assert.deepEqual(info.manifest, { mode: "all", backends: "hostpath,nfs,memory" });
  });

  it("GetPluginCapabilities offers the controller and group controller services and topology constraints", async () => {
    const caps = await d.client.identity.getPluginCapabilities({});
    const types = (caps.capabilities ?? []).filter((c) => c.service).map((c) => c.service!.type);
    assert.deepEqual(
      new Set(types),
      new Set([ServiceType.CONTROLLER_SERVICE, ServiceType.GROUP_CONTROLLER_SERVICE, ServiceType.VOLUME_ACCESSIBILITY_CONSTRAINTS]),
    );
  });

  it("GetPluginCapabilities offers online volume expansion", async () => {
    const caps = await d.client.identity.getPluginCapabilities({});
    const expansion = (caps.capabilities ?? []).filter((c) => c.volumeExpansion).map((c) => c.volumeExpansion!.type);
    assert.deepEqual(expansion, [ExpansionType.ONLINE]);
  });

  it("the SnapshotMetadata service, not implemented, is not offered and answers UNIMPLEMENTED", async () => {
    const caps = await d.client.identity.getPluginCapabilities({});
    assert.ok(!(caps.capabilities ?? []).some((c) => c.service?.type === ServiceType.SNAPSHOT_METADATA_SERVICE));
    // A stock client built from proto/csi.proto, as a backup tool would make one.
    const def = protoLoader.loadSync(path.join(__dirname, "../../../proto/csi.proto"), { longs: String, enums: String, defaults: true });
    const SnapshotMetadata = (grpc.loadPackageDefinition(def) as unknown as { csi: { v1: { SnapshotMetadata: grpc.ServiceClientConstructor } } }).csi.v1.SnapshotMetadata;
    const client = new SnapshotMetadata(d.endpoint, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
        const stream = (client as unknown as { GetMetadataAllocated(req: object): grpc.ClientReadableStream<unknown> }).GetMetadataAllocated({ snapshot_id: "any" });
        stream.on("data", () => reject(new Error("a reply where none was expected")));
        stream.on("error", resolve);
      });
      assert.equal(err.code, grpc.status.UNIMPLEMENTED);
      assert.match(err.details, /does not serve \/csi\.v1\.SnapshotMetadata\/GetMetadataAllocated/);
    } finally {
      client.close();
    }
  });

  it("Probe reports ready while the root is writable, and leaves nothing in it", async () => {
    const res = await d.client.identity.probe({});
    assert.equal(res.ready, true);
    await Promise.all([1, 2, 3].map(() => d.client.identity.probe({}))); // at once: a name each
    assert.deepEqual((await fsp.readdir(d.root)).filter((n) => n.startsWith(".probe-")), []);
  });

  it("Probe reports not ready when the root is missing, and ready again when it is back", async () => {
    await fsp.rename(d.root, d.root + ".away");
    try {
      const res = await d.client.identity.probe({});
      assert.equal(res.ready, false);
    } finally {
      await fsp.rename(d.root + ".away", d.root);
    }
    assert.equal((await d.client.identity.probe({})).ready, true);
  });

  it("Probe reports not ready when the root is read-only", async () => {
    // chmod does not stop root, so make the root a read-only bind of itself.
    bindMount(d.root, d.root);
    try {
      remountBind(d.root, MS.RDONLY);
      assert.equal((await d.client.identity.probe({})).ready, false);
    } finally {
      unmount(d.root);
    }
    assert.equal((await d.client.identity.probe({})).ready, true);
  });
});

describe("Identity in node mode", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ mode: "node" })));
  after(async () => destroyDriver(d));

  it("does not offer the controller or group controller service", async () => {
    const caps = await d.client.identity.getPluginCapabilities({});
    const types = (caps.capabilities ?? []).map((c) => c.service?.type);
    assert.ok(!types.includes(ServiceType.CONTROLLER_SERVICE));
    assert.ok(!types.includes(ServiceType.GROUP_CONTROLLER_SERVICE));
  });
});
