// Redaction covers every field the proto marks (csi_secret).
import assert from "node:assert/strict";
import * as path from "node:path";
import { readFileSync } from "node:fs";
import { redact, REDACTED } from "../../src/server/redact";

describe("secret redaction", () => {
  it("replaces the values of every 'secrets' map, at any depth, keeping keys", () => {
    const out = redact({ name: "v", secrets: { password: "p" }, nested: [{ secrets: { token: "t" } }] });
    assert.deepEqual(out, { name: "v", secrets: { password: REDACTED }, nested: [{ secrets: { token: REDACTED } }] });
  });

  it("every field marked (csi_secret) in proto/csi.proto is named 'secrets' (what redact() relies on)", () => {
    const proto = readFileSync(path.resolve(__dirname, "../../../proto/csi.proto"), "utf8").replace(/\/\/.*$/gm, "");
    const marked = [...proto.matchAll(/(\w+)\s*=\s*\d+\s*\[[^\]]*\(csi_secret\)\s*=\s*true/g)].map((m) => m[1]);
    assert.ok(marked.length >= 15, `found the marked fields (${marked.length})`);
    for (const f of marked) assert.equal(f, "secrets");
  });
});
