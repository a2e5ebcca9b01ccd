// Input rules: names, IDs, paths, maps, capacity ranges, mount flags, endpoints.
import assert from "node:assert/strict";
import { checkRange, chooseSize, fits } from "../../src/controller/capacity";
import { CsiError, Code } from "../../src/csi/errors";
import { checkMap, checkPath, checkToken } from "../../src/csi/validate";
import { MS, parseBindFlags } from "../../src/mount/options";
import { parseEndpoint } from "../../src/server/endpoint";

function code(fn: () => unknown): Code | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as CsiError).code;
  }
}

describe("validation rules", () => {
  it("checkToken accepts CO-style names and refuses hostile ones", () => {
    for (const ok of ["pvc-2f9d6c1e-0b3a-4e5f-9a7b-1c2d3e4f5a6b", "sanity-x_y.z", "a".repeat(128)]) assert.equal(checkToken(ok, "name"), ok);
    for (const bad of ["", ".", "..", "a/b", "a\\b", "a b", "a\0", "\u00e9", "a".repeat(129)]) {
      assert.equal(code(() => checkToken(bad, "name")), Code.INVALID_ARGUMENT, JSON.stringify(bad));
    }
  });

  it("checkPath wants absolute paths without '..' or NUL", () => {
    assert.equal(checkPath("/var/lib/kubelet/x", "p"), "/var/lib/kubelet/x");
    for (const bad of ["", "rel/x", "/a/../b", "/a\0b", "/" + "a".repeat(5000)]) assert.equal(code(() => checkPath(bad, "p")), Code.INVALID_ARGUMENT);
  });

  it("checkMap enforces the 4 KiB map limit", () => {
    assert.deepEqual(checkMap(undefined, "m"), {});
    assert.equal(code(() => checkMap({ k: "v".repeat(4096) }, "m")), Code.INVALID_ARGUMENT);
  });

  it("capacity ranges", () => {
    assert.equal(code(() => checkRange({ requiredBytes: 10, limitBytes: 5 })), Code.OUT_OF_RANGE);
    assert.equal(code(() => checkRange({ requiredBytes: -1 })), Code.INVALID_ARGUMENT);
    assert.equal(chooseSize({ required: 0, limit: 0 }, 100), 100);
    assert.equal(chooseSize({ required: 0, limit: 50 }, 100), 50);
    assert.equal(chooseSize({ required: 70, limit: 0 }, 100), 70);
    assert.ok(fits(10, { required: 5, limit: 0 }) && !fits(10, { required: 5, limit: 8 }) && !fits(4, { required: 5, limit: 0 }));
  });

  it("mount flags become bits; unknown words are refused with a reason", () => {
    const f = parseBindFlags(["ro,noexec", "nosuid"]);
    assert.ok(typeof f !== "string");
    assert.equal(f.bits, MS.RDONLY | MS.NOEXEC | MS.NOSUID);
    assert.deepEqual(f.words, ["noexec", "nosuid", "ro"]);
    const rw = parseBindFlags(["ro", "rw"]);
    assert.ok(typeof rw !== "string" && (rw.bits & MS.RDONLY) === 0, "later words win");
    assert.match(parseBindFlags(["discard"]) as string, /discard/);
  });

  it("endpoints", () => {
    assert.deepEqual(parseEndpoint("unix:///csi/csi.sock"), { kind: "unix", path: "/csi/csi.sock" });
    assert.deepEqual(parseEndpoint("/csi/csi.sock"), { kind: "unix", path: "/csi/csi.sock" });
    assert.deepEqual(parseEndpoint("tcp://127.0.0.1:10000"), { kind: "tcp", host: "127.0.0.1", port: 10000 });
    assert.deepEqual(parseEndpoint("tcp://[::1]:9"), { kind: "tcp", host: "::1", port: 9 });
    for (const bad of ["unix://relative.sock", "http://x:1", "tcp://host", "tcp://h:99999"]) assert.throws(() => parseEndpoint(bad));
  });
});
