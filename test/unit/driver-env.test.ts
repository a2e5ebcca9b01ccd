// The benchmarks start the driver with the environment its image gives it (bench/driver-command.ts).
import assert from "node:assert/strict";
import { driverEnv, NOT_IN_IMAGE, setHereNotInImage } from "../../bench/driver-command";

describe("the benchmarks' driver environment", () => {
  const shell = { PATH: "/usr/bin", NODE_EXTRA_CA_CERTS: "/etc/ssl/certs/ca-certificates.crt", UV_THREADPOOL_SIZE: "8" };

  it("leaves out what the image does not set, and keeps the rest", () => {
    assert.deepEqual(driverEnv(shell), { PATH: "/usr/bin", UV_THREADPOOL_SIZE: "8" });
    assert.equal(shell.NODE_EXTRA_CA_CERTS, "/etc/ssl/certs/ca-certificates.crt", "the caller's environment is not changed");
  });

  it("says which of those this shell sets, so their cost is measured apart", () => {
    assert.deepEqual(setHereNotInImage(shell), ["NODE_EXTRA_CA_CERTS"]);
    assert.deepEqual(setHereNotInImage({ PATH: "/usr/bin" }), []);
    assert.deepEqual([...NOT_IN_IMAGE], ["NODE_EXTRA_CA_CERTS"]);
  });
});
