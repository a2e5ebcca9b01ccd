// The volume_capability the kubelet sends with NodeExpandVolume is made from
// the PersistentVolume alone (pkg/volume/csi/expander.go and csi_client.go):
// its first access mode, its fs_type and its mount options as mount_flags —
// not the pod's fsGroup, which NodeStage and NodePublish carry as
// volume_mount_group. The driver grows the volume of a pod with an fsGroup,
// mounted with the class's mount options, from that capability.
import assert from "node:assert/strict";
import type { JsonObject } from "../../src/replay/k8s-objects";
import type { Scenario } from "../../src/replay/scenario";
import { IMAGE_FS_PROGRAMS, skipUnlessInstalled } from "../sanity/programs";
import { apply, growFixture, type Call, type Reply } from "./grow-fixtures";
import { describeContained, kindDeployment, replay } from "./replay-harness";

const NAMESPACE = "csi-lab-grow-capability";

const fixture = growFixture({
  className: "grow-capability",
  claimName: "flagged",
  parameters: { backend: "hostpath", capacity: "image", "csi.storage.k8s.io/fstype": "xfs" },
});

describeContained("Replay: NodeExpandVolume's volume capability, as the kubelet sends it", function () {
  this.timeout(120_000);

  it("the PV's access mode, fs_type and mount_flags, no volume_mount_group; the driver grows the fsGroup pod's volume online", async function () {
    skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS.xfs!);
    const sc = { ...fixture.storageClass(kindDeployment().driverName), mountOptions: ["noatime"] };
    const pod = fixture.pod("grouped");
    (pod.spec as JsonObject).securityContext = { fsGroup: 2000 };
    const scenario: Scenario = {
      name: "grow-capability",
      namespace: NAMESPACE,
      actions: [apply(sc, fixture.claim("2Gi"), pod), apply(fixture.claim("3G")), { type: "delete-namespace" }],
    };
    const { result, report, events } = await replay(scenario);
    assert.ok(result.ok, report);
    const capability = (method: string) => events.filter((e): e is Call => e.type === "call" && e.call.method === method).map((e) => (e.request as JsonObject).volumeCapability);
    const mode = { mode: "SINGLE_NODE_MULTI_WRITER" };
    assert.deepEqual(capability("NodePublishVolume"), [{ mount: { fsType: "xfs", mountFlags: ["noatime"], volumeMountGroup: "2000" }, accessMode: mode }]);
    assert.deepEqual(capability("NodeExpandVolume"), [{ mount: { fsType: "xfs", mountFlags: ["noatime"], volumeMountGroup: "" }, accessMode: mode }]);
    const expands = events.filter((e): e is Reply => e.type === "reply" && e.call.method === "NodeExpandVolume").map((e) => e.code);
    assert.deepEqual(expands, ["OK"]);
    const sees = events.filter((e) => e.type === "check" && /sees the 3000000000 bytes/.test(e.what));
    assert.deepEqual(sees.map((e) => e.type === "check" && e.ok), [true], "the pod sees the new size");
  });
});
