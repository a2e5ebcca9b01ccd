// `csi-lab rpc walkthrough` ends with the process that started it, as
// `rpc serve` and `rpc call` do. Its call may wait as long as its deadline
// (up to 49.7 days): orphaned — a test runner killed, a teacher's terminal
// gone — it would go on holding the loopback servers it started. Killed,
// its shell forwards nothing: the kernel tells the walkthrough
// (src/server/parent-death.ts), which says why on stderr and exits, and
// nothing it listened on is left.
import assert from "node:assert/strict";
import { parentOf, portFree, portsOf, StartedCommand, throughShell } from "./started-by-shell";

const DAY_MS = "86400000";
const INTRO = /^RPC walkthrough: Playground\.Sleep/m;

describe("csi-lab rpc walkthrough, when the process that started it ends", () => {
  let walkthrough: StartedCommand | undefined;
  afterEach(() => walkthrough?.cleanup());

  for (const transport of ["tcp", "udp", "http2"]) {
    it(`a day-long Sleep over ${transport}, its shell killed: it says why and exits, and nothing it listened on is left`, async () => {
      const args = ["rpc", "walkthrough", "--plain", "--transport", transport, "--method", "sleep", "--request", `{"millis":${DAY_MS}}`, "--timeout", DAY_MS];
      walkthrough = await StartedCommand.start(throughShell(args), INTRO);
      const shell = walkthrough.proc.pid!;
      assert.equal(parentOf(walkthrough.pid), shell, "the shell is the walkthrough's parent");
      const ports = portsOf(walkthrough.pid).filter((p) => p.transport === (transport === "udp" ? "udp" : "tcp"));
      assert.ok(ports.length > 0, "the walkthrough's server listens");
      walkthrough.proc.kill("SIGKILL"); // nothing is forwarded: only the kernel can tell the walkthrough
      await walkthrough.ended();
      assert.match(walkthrough.stderr, new RegExp(`^csi-lab rpc walkthrough: stopping: its parent process \\(pid ${shell}\\) ended$`, "m"));
      for (const p of ports) assert.equal(await portFree(p.transport, p.host, p.port), true, `${p.transport} port ${p.port} free again`);
    });
  }
});
