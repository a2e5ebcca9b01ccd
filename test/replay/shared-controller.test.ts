// A shared (csi-lab-nfs) claim grown and switched to another
// VolumeAttributesClass: csi-resizer calls the controller Deployment's
// driver, which works in the share itself (it reads the volume's marker
// there), so the controller's container must see the share as the node
// plugin's does. The replay gives each driver process only the host
// directories its container mounts: a share the Deployment allows but
// does not mount is missing there, as in the cluster.
import assert from "node:assert/strict";
import type { K8sObject } from "../../src/replay/k8s-objects";
import type { Scenario } from "../../src/replay/scenario";
import { describeContained, callsOf, kindDeployment, replay } from "./replay-harness";

const attributesClass = (name: string, mode: string): K8sObject => ({
  apiVersion: "storage.k8s.io/v1",
  kind: "VolumeAttributesClass",
  metadata: { name },
  driverName: "csi-lab.example.org",
  parameters: { mode },
});

const claim = (storage: string, vac: string): K8sObject => ({
  apiVersion: "v1",
  kind: "PersistentVolumeClaim",
  metadata: { name: "shared-data" },
  spec: { storageClassName: "csi-lab-nfs", volumeAttributesClassName: vac, accessModes: ["ReadWriteMany"], resources: { requests: { storage } } },
});

const pod: K8sObject = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name: "shared-user" },
  spec: {
    containers: [{ name: "app", image: "busybox:1.37.0", volumeMounts: [{ name: "data", mountPath: "/data" }] }],
    volumes: [{ name: "data", persistentVolumeClaim: { claimName: "shared-data" } }],
  },
};

const scenario: Scenario = {
  name: "shared-controller",
  namespace: "csi-lab-shared-controller",
  actions: [
    { type: "apply", objects: [attributesClass("shared-open", "2770"), attributesClass("shared-private", "0700"), claim("1Gi", "shared-open"), pod] },
    { type: "apply", objects: [claim("2Gi", "shared-open")] },
    { type: "apply", objects: [claim("2Gi", "shared-private")] },
    { type: "delete-namespace" },
  ],
};

describeContained("Replay: a shared volume resized and modified by the controller", function () {
  this.timeout(120_000);

  it("the kind overlay: the controller Deployment reaches the share, and ControllerExpandVolume and ControllerModifyVolume succeed", async () => {
    const { result, report, events } = await replay(scenario);
    assert.ok(result.ok, report);
    const calls = callsOf(events).filter((c) => c.startsWith("controller ") && !/GetPluginInfo|Capabilities|Probe/.test(c));
    assert.deepEqual(calls, ["controller ControllerExpandVolume OK", "controller ControllerModifyVolume OK"]);
  });

  it("a controller Deployment that allows the share but does not mount it: the replay fails there, as the cluster would", async () => {
    const kind = kindDeployment();
    const controller = kind.controller!;
    const deployment = { ...kind, controller: { ...controller, mounts: controller.mounts.filter((m) => m.containerPath !== "/srv/csi-lab-share") } };
    const { result, events } = await replay(scenario, { deployment });
    assert.equal(result.ok, false);
    assert.ok(
      callsOf(events).some((c) => /^controller ControllerExpandVolume (?!OK)/.test(c)),
      `ControllerExpandVolume fails on the controller: ${callsOf(events).join(", ")}`,
    );
  });
});
