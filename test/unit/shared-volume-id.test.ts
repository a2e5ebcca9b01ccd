// Shared-volume IDs: what they carry, the record form, versions, and what is refused.
import assert from "node:assert/strict";
import { Code } from "../../src/csi/errors";
import { nfsMountArgs } from "../../src/mount/mount-command";
import { encodePart, formatSharedId, locationKey, parseSharedId } from "../../src/backends/nfs/volume-id";

describe("shared volume IDs", () => {
  it("an nfs1 ID made by this version is read back by it (golden: a later version must keep reading these)", () => {
    const golden = "nfs1:a:nfs.example.internal:exports,csi-lab:team-a,data%20%25x";
    const id = parseSharedId(golden);
    assert.deepEqual(id && id.form === "inline" && id.location, { server: "nfs.example.internal", share: "/exports/csi-lab", subDir: "team-a/data %x" });
    assert.equal(id!.onDelete, "archive");
    assert.equal(formatSharedId({ server: "nfs.example.internal", share: "/exports/csi-lab", subDir: "team-a/data %x" }, "archive")!.id, golden);
  });

  it("round-trips servers, IPv6 addresses, local shares and odd names", () => {
    for (const loc of [
      { server: "", share: "/mnt/share", subDir: "pvc-1" },
      { server: "10.0.0.7", share: "/", subDir: "a/b/c" },
      { server: "fd00::7", share: "/srv/nfs", subDir: "ünïcode,comma:colon" },
    ]) {
      for (const onDelete of ["delete", "retain", "archive"] as const) {
        const made = formatSharedId(loc, onDelete)!;
        assert.ok(/^[\x21-\x2e\x30-\x5b\x5d-\x7e]+$/.test(made.id), made.id);
        const back = parseSharedId(made.id)!;
        assert.equal(back.form, "inline");
        assert.deepEqual(back.form === "inline" && back.location, loc);
        assert.equal(back.onDelete, onDelete);
      }
    }
  });

  it("uses the record form when the inline ID would pass 128 bytes, and refuses what fits neither", () => {
    const loc = { server: "nfs.example.internal", share: "/exports", subDir: "x".repeat(120) };
    const made = formatSharedId(loc, "delete")!;
    assert.equal(made.form, "record");
    assert.equal(made.id, `nfs1:d:nfs.example.internal:exports:#${locationKey(loc)}`);
    const back = parseSharedId(made.id)!;
    assert.deepEqual(back.form === "record" && back.share, { server: "nfs.example.internal", share: "/exports" });
    assert.equal(formatSharedId({ server: "s".repeat(60), share: "/" + "p".repeat(60), subDir: "x" }, "delete"), undefined);
  });

  it("refuses newer formats and malformed or non-canonical IDs with INVALID_ARGUMENT; other IDs are not shared ones", () => {
    const refused = (id: string, re: RegExp) =>
      assert.throws(() => parseSharedId(id), (e: { code: number; message: string }) => e.code === Code.INVALID_ARGUMENT && re.test(e.message));
    refused("nfs2:d::a:b", /newer csi-lab/);
    refused("nfs0:d::a:b", /no shared-volume format/);
    refused("nfs1:x::a:b", /onDelete letter/);
    refused("nfs1:d::a:..", /subDir/);
    refused("nfs1:d::a,,b:c", /share/);
    refused("nfs1:d::a:%2f", /canonically/);
    refused("nfs1:d:bad_host!:a:b", /canonically|server/);
    refused("nfs1:d::a:#1234", /32 hex/);
    refused("nfs1:d::a", /5 ':'-separated/);
    assert.equal(parseSharedId("hp-0123456789abcdef0123456789abcdef"), undefined);
    assert.equal(parseSharedId("reallyfakevolumeid"), undefined);
  });

  it("encodes '/' as ',' and everything outside the safe set as %XX", () => {
    assert.equal(encodePart("a/b c,d"), "a,b%20c%2Cd");
  });

  it("builds mount -t nfs command lines with options joined by commas", () => {
    assert.deepEqual(nfsMountArgs("srv:/x", "/t", ["nfsvers=4.1", "hard"]), ["-t", "nfs", "-o", "nfsvers=4.1,hard", "srv:/x", "/t"]);
    assert.deepEqual(nfsMountArgs("[fd00::1]:/x", "/t", []), ["-t", "nfs", "[fd00::1]:/x", "/t"]);
  });
});
