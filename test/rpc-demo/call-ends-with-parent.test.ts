// `csi-lab rpc call` ends with the process that started it, as `rpc serve`
// does. A call waits for its reply up to its deadline (--timeout, up to
// 49.7 days): orphaned, it would hold its connection, and the server's
// handler, that long. Killed, its shell forwards nothing: the kernel tells
// the caller (src/server/parent-death.ts), which says why on stderr and
// exits; the server sees its caller go and stops the handler.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { PlaygroundState, playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import { Trace } from "../../src/rpc-demo/trace";
import { startServer } from "../../src/rpc-demo/transports";
import type { ServerTransport, TransportName } from "../../src/rpc-demo/transports/transport";
import { BIN, parentOf, StartedCommand, throughShell, until } from "./started-by-shell";

const DAY_MS = "86400000";

/** A server whose Sleep handler the test watches: when it starts (the call is under way), and when it is told to stop. */
async function watchedServer(transport: TransportName): Promise<{ server: ServerTransport; started: () => Promise<unknown>; stopped: Promise<unknown> }> {
  const state = new PlaygroundState();
  let decoded = false;
  const server = await startServer(transport, playgroundDispatcher(state), { trace: new Trace((s) => void (decoded ||= s.title.startsWith("decode the arguments"))) });
  return { server, started: () => until("the server to start the Sleep", () => decoded), stopped: once(state.events, "sleep-aborted") };
}

/** `rpc call` of a day-long Sleep with a day-long deadline. */
const dayLongSleep = (transport: TransportName, port: number) =>
  ["rpc", "call", "--plain", "--transport", transport, "--port", String(port), "--method", "sleep", "--request", `{"millis":${DAY_MS}}`, "--timeout", DAY_MS];

describe("csi-lab rpc call, when the process that started it ends", () => {
  let call: StartedCommand | undefined;
  let server: ServerTransport | undefined;
  afterEach(async () => {
    call?.cleanup();
    await server?.close();
  });

  for (const transport of ["tcp", "http2"] as TransportName[]) {
    it(`a day-long Sleep over ${transport}, its shell killed: the caller says why and exits, and the server stops the handler`, async () => {
      const watched = await watchedServer(transport);
      server = watched.server;
      // The caller prints its story only when the call ends: its output cannot say it is under way, the server can.
      call = await StartedCommand.start(throughShell(dayLongSleep(transport, server.port)), /^/);
      await watched.started();
      const shell = call.proc.pid!;
      assert.equal(parentOf(call.pid), shell, "the shell is the caller's parent");
      call.proc.kill("SIGKILL"); // nothing is forwarded: only the kernel can tell the caller
      await call.ended();
      assert.match(call.stderr, new RegExp(`^csi-lab rpc call: stopping: its parent process \\(pid ${shell}\\) ended$`, "m"));
      await watched.stopped; // its connection closed: the server told the handler to stop
    });
  }

  it("a SIGTERM of its own: it says so and exits 1, the call not returned", async () => {
    const watched = await watchedServer("tcp");
    server = watched.server;
    // Started directly (a shell's `wait` would answer 0 whatever it exits with).
    const caller = spawn(process.execPath, [BIN, ...dayLongSleep("tcp", server.port)], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    caller.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const exited = once(caller, "exit");
    try {
      await watched.started();
      caller.kill("SIGTERM");
      assert.deepEqual(await exited, [1, null], stderr);
    } finally {
      if (caller.exitCode === null && caller.signalCode === null) caller.kill("SIGKILL");
    }
    assert.match(stderr, /^csi-lab rpc call: stopping: SIGTERM$/m);
    await watched.stopped;
  });
});
