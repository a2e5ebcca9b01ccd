// --metrics-address takes the sidecars' --http-endpoint spellings.
import { strict as assert } from "node:assert";
import { parseHttpAddress } from "../../src/server/http-address";

describe("metrics: --metrics-address parsing", () => {
  const good: [string, { host: string | undefined; port: number }][] = [
    ["127.0.0.1:9810", { host: "127.0.0.1", port: 9810 }],
    [":9810", { host: undefined, port: 9810 }],
    ["[::1]:0", { host: "::1", port: 0 }],
    ["localhost:8080", { host: "localhost", port: 8080 }],
  ];
  for (const [spec, want] of good) {
    it(`accepts ${spec}`, () => assert.deepEqual(parseHttpAddress(spec), want));
  }
  for (const spec of ["9810", "127.0.0.1", "host:99999", "::1:80", "http://x:1"]) {
    it(`refuses ${JSON.stringify(spec)}`, () => assert.throws(() => parseHttpAddress(spec), /--metrics-address/));
  }
});
