// Reading a volume's record: readJsonIfPresent answers "no such file" without an exception,
// and the index's hint only changes the order of the questions, never the answer.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { Code } from "../../src/csi/errors";
import { readJsonIfPresent } from "../../src/storage/atomic-file";
import { readRecordFile } from "../../src/storage/record-file";

describe("readJsonIfPresent", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "read-json-"));
    writeFileSync(path.join(dir, "rec.json"), '{"volumeId":"v1"}');
    writeFileSync(path.join(dir, "bad.json"), "{not json");
    symlinkSync(path.join(dir, "rec.json"), path.join(dir, "link.json"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const likely of [true, false]) {
    describe(likely ? "a file the index knows" : "a file the index does not know", () => {
      it("reads a record that is there", () => {
        assert.deepEqual(readJsonIfPresent(path.join(dir, "rec.json"), likely), { volumeId: "v1" });
      });

      it("answers undefined for a record that is not there", () => {
        assert.equal(readJsonIfPresent(path.join(dir, "missing.json"), likely), undefined);
      });

      it("refuses a symlink in the record's place", () => {
        assert.throws(() => readJsonIfPresent(path.join(dir, "link.json"), likely), { code: "ELOOP" });
      });

      it("passes on a record that is not JSON", () => {
        assert.throws(() => readJsonIfPresent(path.join(dir, "bad.json"), likely), SyntaxError);
      });

      it("passes on errors other than a missing file", () => {
        assert.throws(() => readJsonIfPresent(path.join(dir, "rec.json", "below-a-file.json"), likely), { code: "ENOTDIR" });
      });
    });
  }

  describe("readRecordFile, the stores' reader", () => {
    it("reads a record, and answers undefined where there is none", () => {
      assert.deepEqual(readRecordFile(path.join(dir, "rec.json"), "volume v1"), { volumeId: "v1" });
      assert.equal(readRecordFile(path.join(dir, "missing.json"), "volume v2", false), undefined);
    });

    it("names a record that is not JSON in an INTERNAL error", () => {
      assert.throws(() => readRecordFile(path.join(dir, "bad.json"), "snapshot s1"), { code: Code.INTERNAL, message: "metadata of snapshot s1 is not valid JSON" });
    });
  });
});
