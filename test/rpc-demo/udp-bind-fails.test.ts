// A UDP socket that cannot bind still holds a file descriptor: the server (or client) that made it
// closes it before passing the error on, or every failed `rpc serve --port P` attempt in a long-lived
// process (the lab, a test run) would leave one behind. The failure is real: a port already bound,
// by a socket that did not ask to share it, refuses a second bind (EADDRINUSE).
import assert from "node:assert/strict";
import { readdirSync, readlinkSync } from "node:fs";
import { playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { UdpServer } from "../../src/rpc-demo/transports/udp";

/** This process's open sockets, by the inode /proc names them with. */
function openSockets(): Set<string> {
  const sockets = new Set<string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith("socket:")) sockets.add(target);
    } catch {
      // the directory's own descriptor, closed by now
    }
  }
  return sockets;
}

describe("UDP: a socket whose bind fails is closed", () => {
  for (const host of ["127.0.0.1", "::1"]) {
    it(`UdpServer.listen on ${host} at a port already bound fails with EADDRINUSE and leaves no socket open`, async function () {
      let first: UdpServer;
      try {
        first = await UdpServer.listen(playgroundDispatcher(), { host });
      } catch {
        return this.skip(); // no IPv6 here
      }
      try {
        const before = openSockets();
        for (let attempt = 0; attempt < 3; attempt++) {
          await assert.rejects(UdpServer.listen(playgroundDispatcher(), { host, port: first.port }), (err: NodeJS.ErrnoException) => {
            assert.equal(err.code, "EADDRINUSE");
            return true;
          });
        }
        const left = [...openSockets()].filter((s) => !before.has(s));
        assert.deepEqual(left, [], "sockets left open by the failed binds");
      } finally {
        await first.close();
      }
    });
  }
});
