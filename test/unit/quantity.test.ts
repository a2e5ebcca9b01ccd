// Sizes and modes as an inline volume's attributes and a VolumeAttributesClass spell them.
import assert from "node:assert/strict";
import { checkMutableParameters, mutableParametersProblem } from "../../src/controller/mutable-parameters";
import { parseQuantity } from "../../src/node/ephemeral";

describe("inline volume sizes and mutable parameters", () => {
  it("parseQuantity reads bytes and Kubernetes quantities, and nothing else", () => {
    const cases: [string, number | undefined][] = [
      ["1073741824", 2 ** 30],
      ["64Mi", 64 * 2 ** 20],
      ["1Gi", 2 ** 30],
      ["500M", 500e6],
      ["2k", 2000],
      ["0", undefined],
      ["-1Gi", undefined],
      ["1.5Gi", undefined],
      ["1gi", undefined],
      ["", undefined],
      ["99999999999Ti", undefined], // beyond 2^53
    ];
    for (const [text, want] of cases) assert.equal(parseQuantity(text), want, text);
  });

  it("mode is canonicalised to four octal digits; setuid and non-octal are refused", () => {
    assert.deepEqual(checkMutableParameters({ mode: "755" }), { mode: "0755" });
    assert.deepEqual(checkMutableParameters({ mode: "2770" }), { mode: "2770" });
    assert.match(mutableParametersProblem({ mode: "4755" })!, /setuid/);
    assert.match(mutableParametersProblem({ mode: "0778" })!, /octal/);
    assert.match(mutableParametersProblem({ mode: "77" })!, /octal/);
    assert.match(mutableParametersProblem({ owner: "1000" })!, /unknown/);
  });
});
