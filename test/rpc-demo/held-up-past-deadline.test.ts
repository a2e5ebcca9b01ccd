// A message held up (--fault delay) longer than the call's deadline: the
// caller gives up at its deadline, and the command ends once it has told
// that story — not when the held-up message would have come due, ten
// minutes later. The delay holds a message at its sender; the story says
// that it was still held up when its connection (or the server) closed, and
// so never arrived.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { startServer } from "../../src/rpc-demo/transports";
import { playgroundDispatcher } from "../../src/rpc-demo/playground-service";
import type { TransportName } from "../../src/rpc-demo/transports/transport";
import { BIN } from "./started-by-shell";

const TEN_MINUTES = "600000";

/** The command's exit status and output; one still running after 20 s (the held-up message not yet due) is killed: status null. */
function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number | null }).code ?? null) : 0, stdout, stderr });
    });
  });
}

/** Lines the 100-column wrapping split, joined again. */
const unwrapped = (text: string) => text.replace(/\n {2,}(?=\S)/g, " ");

describe("a message held up past the call's deadline", () => {
  const closes: Record<TransportName, { request: string; reply: string }> = {
    tcp: { request: "the TCP connection closes with the request", reply: "the server closes with 2 replies" },
    udp: { request: "the client's UDP socket closes with \\d+ requests", reply: "the server closes with \\d+ replies" },
    http2: { request: "the HTTP/2 connection closes with the request", reply: "the server closes with 2 replies" },
  };
  for (const transport of ["tcp", "udp", "http2"] as TransportName[]) {
    for (const direction of ["request", "reply"] as const) {
      it(`rpc walkthrough over ${transport}, the ${direction} held up ten minutes: it ends at the deadline's story, the held-up ${direction} never arriving`, async () => {
        const fault = `delay=${TEN_MINUTES}${direction === "reply" ? ",reply-only" : ""}`;
        const r = await run(["rpc", "walkthrough", "--plain", "--transport", transport, "--fault", fault, "--timeout", "200"]);
        assert.equal(r.code, 1, `exit status (null: still running after 20 s)\n${r.stdout}${r.stderr}`);
        const text = unwrapped(r.stdout);
        assert.match(text, new RegExp(`network fault .* ✗ ${closes[transport][direction]} still held up: (it never arrives|they never arrive)`));
        assert.match(text, /Result: ✗ DEADLINE_EXCEEDED/);
      });
    }
  }

  it("rpc call, its request held up ten minutes: it ends at its deadline, saying the request never arrived", async () => {
    const server = await startServer("tcp", playgroundDispatcher());
    try {
      const r = await run(["rpc", "call", "--plain", "--port", String(server.port), "--fault", `delay=${TEN_MINUTES}`, "--timeout", "200"]);
      assert.equal(r.code, 1, `exit status (null: still running after 20 s)\n${r.stdout}${r.stderr}`);
      assert.match(unwrapped(r.stdout), /network fault .* ✗ the TCP connection closes with the request still held up: it never arrives/);
      assert.match(r.stdout, /Result: ✗ DEADLINE_EXCEEDED/);
    } finally {
      await server.close();
    }
  });
});
