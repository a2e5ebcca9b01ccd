// `csi-lab rpc serve` ends with the process that started it. Left running,
// orphaned, it would keep its port, and the next `rpc serve` on that port
// would fail. Killed, its shell forwards nothing: the kernel tells the
// server (src/server/parent-death.ts), which says why on stderr, closes
// its listener and exits.
import assert from "node:assert/strict";
import { BIN, parentOf, portFree, StartedCommand, throughNpx, throughShell, until } from "./started-by-shell";

const SERVING = /^Playground serving over (\w+) on 127\.0\.0\.1:(\d+) /m;

describe("csi-lab rpc serve, when the process that started it ends", () => {
  let serve: StartedCommand | undefined;
  afterEach(() => serve?.cleanup());
  const port = (s: StartedCommand) => Number(SERVING.exec(s.stdout)![2]);

  it("the shell that ran `csi-lab rpc serve &` is killed: the server says why, exits, and its port is free again", async () => {
    serve = await StartedCommand.start(throughShell(["rpc", "serve", "--port", "0", "--quiet"]), SERVING);
    const shell = serve.proc.pid!;
    assert.equal(parentOf(serve.pid), shell, "the shell is the server's parent");
    assert.equal(await portFree("tcp", "127.0.0.1", port(serve)), false, "the server holds its port");
    serve.proc.kill("SIGKILL"); // nothing is forwarded: only the kernel can tell the server
    await serve.ended();
    assert.match(serve.stderr, new RegExp(`^csi-lab rpc serve: stopping: its parent process \\(pid ${shell}\\) ended$`, "m"));
    assert.equal(await portFree("tcp", "127.0.0.1", port(serve)), true, "port free again");
  });

  it("npm, which ran it for `npx csi-lab rpc serve --transport udp`, is sent SIGTERM: the server stops too", async function () {
    this.timeout(60_000);
    serve = await StartedCommand.start(throughNpx(["rpc", "serve", "--transport", "udp", "--port", "0", "--quiet"]), SERVING);
    // npm → sh -c "csi-lab rpc serve …" → the server.
    const shell = parentOf(serve.pid);
    assert.equal(await portFree("udp", "127.0.0.1", port(serve)), false, "the server holds its port");
    serve.proc.kill("SIGTERM");
    await serve.ended();
    assert.match(serve.stderr, new RegExp(`^csi-lab rpc serve: stopping: its parent process \\(pid ${shell}\\) ended$`, "m"));
    assert.equal(await portFree("udp", "127.0.0.1", port(serve)), true, "port free again");
  });

  it("a parent with threads whose main thread has ended: that is its parent's end, told once, not a SIGTERM of unknown cause", async () => {
    // A Node.js parent that started the server from its main thread, which then exits alone (the exit system call,
    // not exit_group): the kernel sends the SIGTERM while the parent's other threads still go and getppid() still
    // names it, then again as each thread it hands the server to ends (src/server/parent-death.ts).
    const script = [
      `const { spawn } = require("node:child_process");`,
      `const koffi = require(${JSON.stringify(require.resolve("koffi"))});`,
      `const syscall = koffi.load("libc.so.6").func("long syscall(long n, ...)");`,
      `spawn(process.execPath, [${JSON.stringify(BIN)}, "rpc", "serve", "--port", "0", "--quiet"], { stdio: "inherit" });`,
      `process.on("SIGUSR2", () => syscall(process.arch === "arm64" ? 93 : 60, "long", 0));`,
    ].join("\n");
    serve = await StartedCommand.start([process.execPath, ["-e", script]], SERVING);
    const parent = serve.proc.pid!;
    assert.equal(parentOf(serve.pid), parent, "the Node.js process is the server's parent");
    process.kill(parent, "SIGUSR2");
    await until("the server to stop", () => /stopping/.test(serve!.stderr));
    serve.proc.kill("SIGKILL"); // the parent's other threads end: the kernel repeats the SIGTERM
    await serve.ended();
    assert.equal(serve.stderr, `csi-lab rpc serve: stopping: its parent process (pid ${parent}) ended\n`);
    assert.equal(await portFree("tcp", "127.0.0.1", port(serve)), true, "port free again");
  });

  it("a SIGTERM of its own: it says so, closes its listener and exits 0", async () => {
    serve = await StartedCommand.start(throughShell(["rpc", "serve", "--transport", "http2", "--port", "0", "--quiet"]), SERVING);
    const shell = serve.proc;
    process.kill(serve.pid, "SIGTERM");
    const code = await new Promise<number | null>((resolve) => shell.once("exit", (c) => resolve(c)));
    assert.equal(code, 0, "the shell's `wait` passes on the server's status");
    assert.match(serve.stderr, /^csi-lab rpc serve: stopping: SIGTERM$/m);
    assert.equal(await portFree("tcp", "127.0.0.1", port(serve)), true, "port free again");
  });
});
