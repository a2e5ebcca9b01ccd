// The benchmarks start the driver with the environment its image gives it (bench/driver-command.ts).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { driverEnv, NOT_IN_IMAGE, SET_BY_IMAGE, setHereNotInImage } from "../../bench/driver-command";

describe("the benchmarks' driver environment", () => {
  const shell = { PATH: "/usr/bin", NODE_EXTRA_CA_CERTS: "/etc/ssl/certs/ca-certificates.crt", UV_THREADPOOL_SIZE: "8" };

  it("leaves out what the image does not set, adds what it sets, and keeps the rest", () => {
    assert.deepEqual(driverEnv(shell), { PATH: "/usr/bin", UV_THREADPOOL_SIZE: "8", NODE_OPTIONS: "--use-openssl-ca" });
    assert.equal(shell.NODE_EXTRA_CA_CERTS, "/etc/ssl/certs/ca-certificates.crt", "the caller's environment is not changed");
  });

  it("says which of those this shell sets, so their cost is measured apart", () => {
    assert.deepEqual(setHereNotInImage(shell), ["NODE_EXTRA_CA_CERTS"]);
    assert.deepEqual(setHereNotInImage({ PATH: "/usr/bin" }), []);
    assert.deepEqual([...NOT_IN_IMAGE], ["NODE_EXTRA_CA_CERTS"]);
  });

  it("sets for Node what the image's Dockerfile sets, and the image keeps Node's bundled root certificates unparsed", () => {
    const dockerfile = readFileSync(path.resolve(__dirname, "../../../Dockerfile"), "utf8");
    for (const [name, value] of Object.entries(SET_BY_IMAGE)) assert.match(dockerfile, new RegExp(`^ENV ${name}=${value}$`, "m"), name);
    assert.equal(SET_BY_IMAGE.NODE_OPTIONS, "--use-openssl-ca");
  });
});
