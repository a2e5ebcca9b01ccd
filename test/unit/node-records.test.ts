// A node record vouches for the mount it recorded, never for whatever is at its path later.
import assert from "node:assert/strict";
import type { Capability } from "../../src/csi/capabilities";
import type { MountEntry } from "../../src/mount/mountinfo";
import { NodeRecords, vouchesFor } from "../../src/storage/node-records";

const cap = { accessMode: 5, fsType: "", mountFlags: [], volumeMountGroup: "" } as unknown as Capability;

function entry(device: string, root: string, mountPoint = "/k/stage"): MountEntry {
  return { id: 40, parentId: 1, device, root, mountPoint, options: ["rw"], fsType: "ext4", source: "/dev/vda", superOptions: [] };
}

describe("node records", () => {
  const records = new NodeRecords();
  records.put("stage", { volumeId: "v1", path: "/k/stage", capability: cap, readonly: false, mount: { device: "8:1", root: "/share/v1" } });

  it("vouch for the mount made: same place, device and root, same volume", () => {
    assert.equal(vouchesFor(records.get("stage", "/k/stage"), "v1", entry("8:1", "/share/v1")), true);
  });

  it("not for another mount at the same place, nor for another volume", () => {
    assert.equal(vouchesFor(records.get("stage", "/k/stage"), "v1", entry("0:52", "/")), false, "a tmpfs mounted there since");
    assert.equal(vouchesFor(records.get("stage", "/k/stage"), "v1", entry("8:1", "/share/other")), false, "another directory of the share");
    assert.equal(vouchesFor(records.get("stage", "/k/stage"), "v2", entry("8:1", "/share/v1")), false, "another volume");
    assert.equal(vouchesFor(records.get("stage", "/k/stage"), "v1", entry("8:1", "/share/v1", "/k/elsewhere")), false, "another place");
  });

  it("not while the mount is still being made (no identity recorded yet)", () => {
    const r = new NodeRecords();
    r.put("publish", { volumeId: "v1", path: "/k/stage", capability: cap, readonly: false });
    assert.equal(vouchesFor(r.get("publish", "/k/stage"), "v1", entry("8:1", "/share/v1")), false);
  });
});
