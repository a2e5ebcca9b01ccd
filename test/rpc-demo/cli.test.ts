// The playground's commands, run as a user runs them: the real
// bin/csi-lab.js as a child process. Help for every command, bad input
// refused with a clear error and a non-zero exit, one exact answer whatever
// the codec and transport, and a walkthrough that Ctrl-C or Ctrl-D ends.
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import * as path from "node:path";
import { PROTO_DIR } from "../../src/rpc-demo/codecs/schema";

const BIN = path.join(PROTO_DIR, "..", "bin", "csi-lab.js");
const VERSION = (require(path.join(PROTO_DIR, "..", "package.json")) as { version: string }).version;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    // A command that should have been refused but serves instead is killed, not waited for.
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A bad input: a non-zero exit and an error on stderr that matches. */
async function refused(args: string[], pattern: RegExp): Promise<Run> {
  const r = await run(args);
  assert.notEqual(r.code, 0, `exit status of ${args.join(" ")}`);
  assert.match(r.stderr, pattern);
  return r;
}

/** Lines the 100-column wrapping split, joined again (for matching whole sentences). */
const unwrapped = (text: string) => text.replace(/\n {2,}(?=\S)/g, " ");

const maxWidth = (text: string) => Math.max(...text.split("\n").map((l) => [...l].length));

describe("csi-lab rpc, the commands", () => {
  for (const command of ["walkthrough", "serve", "call", "csi", "dump", "faults", "table"]) {
    it(`rpc ${command} --help and -h print its flags, defaults and an example; --version its version`, async () => {
      for (const flag of ["--help", "-h"]) {
        const r = await run(["rpc", command, flag]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`^csi-lab rpc ${command}`));
        assert.match(r.stdout, /Flags:\n[\s\S]*--help/);
        assert.match(r.stdout, /Example:\n {2}csi-lab rpc /);
        assert.ok(maxWidth(r.stdout) <= 100, "fits 100 columns");
      }
      assert.equal((await run(["rpc", command, "--version"])).stdout, `${VERSION}\n`);
    });
  }

  it("the walkthrough's help gives defaults, and --method M --help lists the method's fields and types", async () => {
    assert.match((await run(["rpc", "walkthrough", "--help"])).stdout, /--transport tcp\|udp\|http2\n\s+how the bytes travel \(default: tcp\)/);
    const add = await run(["rpc", "call", "--method", "add", "--help"]);
    assert.equal(add.code, 0);
    assert.match(add.stdout, /request csilab\.rpcdemo\.v1\.AddRequest:\n {2}a: sint64 \(a whole number from -9223372036854775808 to 9223372036854775807/);
    assert.match(add.stdout, /reply csilab\.rpcdemo\.v1\.AddReply:\n {2}sum: sint64/);
    assert.match((await run(["rpc", "walkthrough", "--method", "sleep", "-h"])).stdout, /millis: uint32 \(a whole number from 0 to 4294967295\)/);
  });

  describe("bad input: a clear error and a non-zero exit", () => {
    const walk = (request: string, ...more: string[]) => ["rpc", "walkthrough", "--plain", ...more, "--request", request];
    it("a string that is not a number for a number field", async () => {
      await refused(walk('{"a":"x","b":40}'), /--request for Add: field a: "x" is not a number; expected sint64/);
      await refused(walk('{"a":"two","b":40}', "--codec", "json"), /field a: "two" is not a number/);
    });
    it("a fractional number, with either codec", async () => {
      for (const codec of ["protobuf", "json"]) await refused(walk('{"a":2.5,"b":1}', "--codec", codec), /field a: 2\.5 is not a whole number; expected sint64/);
    });
    it("a field the method does not have", async () => {
      await refused(walk('{"ms":3000}', "--method", "sleep"), /unknown field "ms": csilab\.rpcdemo\.v1\.SleepRequest has no such field \(its fields: millis\)/);
    });
    it("null, for the request or for a field", async () => {
      await refused(walk("null"), /must be a JSON object for csilab\.rpcdemo\.v1\.AddRequest, not null/);
      await refused(walk('{"a":null,"b":1}'), /field a: null is not a value \(proto3 JSON would read it as the default, 0/);
    });
    it("a value out of its field's range", async () => {
      await refused(walk('{"a":"9223372036854775808","b":1}'), /field a: "9223372036854775808" is out of range; expected sint64/);
      await refused(walk('{"millis":-1}', "--method", "sleep"), /field millis: -1 is out of range; expected uint32/);
    });
    it("rpc dump of something that is not hex, and of a type that does not exist (the valid ones listed)", async () => {
      await refused(["rpc", "dump", "zz"], /not hex: "z"/);
      const r = await refused(["rpc", "dump", "--type", "Nope", "08"], /no message type "Nope"/);
      assert.match(r.stderr, /csilab\.rpcdemo\.v1: AddRequest, AddReply,/);
      assert.match(r.stderr, /csi\.v1: GetPluginInfoRequest,/);
    });
    it("--timeout outside what the call header carries (1 to 2^32 − 1 ms)", async () => {
      for (const t of ["0", "4294967296", "5000000000", "2.5"]) await refused(["rpc", "walkthrough", "--plain", "--timeout", t], /--timeout must be a whole number of milliseconds from 1 to 4294967295/);
    });
    it("rpc walkthrough has no --host or --port: both ends are its own, on loopback", async () => {
      await refused(["rpc", "walkthrough", "--plain", "--host", "10.0.0.1"], /Unknown option '--host'/);
      await refused(["rpc", "walkthrough", "--plain", "--port", "7000"], /Unknown option '--port'/);
    });
    it("rpc csi --name the driver would refuse: refused before a driver is started", async () => {
      for (const [name, why] of [["", /--name: name is required/], ["a b", /--name: name "a b" may only contain printable ASCII/], ["x".repeat(129), /--name: name is 129 bytes long/]] as const) {
        const r = await refused(["rpc", "csi", "--plain", "--name", name], why);
        assert.equal(r.stdout, "", "nothing started, nothing said");
      }
    });
    it("bad flags and input exit 2, as `rpc dump --help` says; bytes that are not protobuf exit 1", async () => {
      for (const args of [["dump", "zz"], ["dump", "--type", "Nope", "08"], ["dump", "--bogus"], ["walkthrough", "--codec", "xml"], ["walkthrough", "--request", '{"a":1.5}'], ["walkthrough", "--fault", "crash=7"], ["serve"], ["nope"]]) {
        assert.equal((await run(["rpc", ...args])).code, 2, args.join(" "));
      }
      assert.match((await run(["rpc", "dump", "--help"])).stdout, /Exit status 1 when the bytes are not valid protobuf \(the dump says where\), 2 for bad input\./);
      assert.equal((await run(["rpc", "dump", "08"])).code, 1);
    });
    it("a flag given twice is refused, not settled by the last one", async () => {
      await refused(["rpc", "call", "--port", "7000", "--port", "7001"], /--port is given twice \("7000", then "7001"\); give it once/);
      await refused(["rpc", "walkthrough", "--plain", "--transport", "udp", "--transport=tcp"], /--transport is given twice/);
    });
    it("a --host that is no IP address or host name: one line, exit 2, before anything listens or calls", async () => {
      // "" would listen on every interface, "[::1]" and "127.0.0.1:80" fail in node's words; for call "" meant localhost.
      for (const [command, port] of [["serve", "0"], ["call", "1"]]) {
        for (const host of ["", "not a host!", "127.0.0.1:80", "[::1]"]) {
          const r = await run(["rpc", command, "--port", port, "--host", host]);
          assert.equal(r.code, 2, `rpc ${command} --host ${JSON.stringify(host)}: ${r.stdout}${r.stderr}`);
          assert.match(r.stderr, /^csi-lab: --host "[^\n]*": (not an IP address or a host name|an IPv6 address goes without brackets \(::1\))[^\n]*\n$/);
          assert.equal(r.stdout, "");
        }
      }
      const tcp = await run(["rpc", "csi", "--endpoint", "tcp://not a host!:80"]);
      assert.equal(tcp.code, 2, tcp.stderr);
      assert.match(tcp.stderr, /^csi-lab: --endpoint must be unix:\/\/\/absolute\/path\.sock or tcp:\/\/host:port/);
    });
    it("rpc serve --host that is not this machine's address: one line, exit 2", async () => {
      const r = await run(["rpc", "serve", "--port", "0", "--host", "192.0.2.1"]); // TEST-NET-1: nobody's
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr, "csi-lab: --host 192.0.2.1 is not an address of this machine\n");
    });
    it("a fault only the other end can inject, and --no-cache without UDP: refused, one line, exit 2, instead of quietly left out", async () => {
      for (const [args, why] of [
        [["call", "--port", "1", "--fault", "crash"], /^csi-lab: --fault crash: only the server crashes; give it to rpc serve\n$/],
        [["call", "--port", "1", "--fault", "drop,reply-only"], /^csi-lab: --fault reply-only: the caller sends only requests; give reply faults to rpc serve\n$/],
        [["serve", "--port", "0", "--fault", "delay=100,request-only"], /^csi-lab: --fault request-only: the server sends only replies; give request faults to rpc call\n$/],
        [["serve", "--port", "0", "--no-cache"], /^csi-lab: --no-cache is for --transport udp: TCP and HTTP\/2 have no duplicate-request cache\n$/],
      ] as const) {
        const r = await run(["rpc", ...args]);
        assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, why);
        assert.equal(r.stdout, "");
      }
    });
    it("rpc serve --port 99999: our own one-line error", async () => {
      const r = await refused(["rpc", "serve", "--port", "99999"], /^csi-lab: --port must be a whole number from 1 to 65535 \(0: any free port\), not "99999"\n$/);
      assert.equal(r.stdout, "");
    });
  });

  it("rpc dump of bytes that are not protobuf: the length byte at offset 0007, the error names offset 7, exit 1", async () => {
    const r = await run(["rpc", "dump", "0a04646174611a0a08800210"]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^0007 {2}0a {23}✗ at offset 7: length 10 of field 3/m);
    assert.match(r.stdout, /^0008 {2}08 80 02 10 {14}✗ not read/m);
    assert.match(r.stderr, /not valid protobuf: at offset 7: length 10 of field 3/);
    const ok = await run(["rpc", "dump", "--type", "AddRequest", "08 04 10 50"]);
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /sint64 40 \(zigzag 80\)/);
  });

  it('{"a":"9223372036854775806","b":1} answers {"sum":"9223372036854775807"}, byte for byte the same, with both codecs over every transport', async () => {
    const results = new Set<string>();
    for (const transport of ["tcp", "udp", "http2"]) {
      for (const codec of ["protobuf", "json"]) {
        const r = await run(["rpc", "walkthrough", "--plain", "--transport", transport, "--codec", codec, "--request", '{"a":"9223372036854775806","b":1}']);
        assert.equal(r.code, 0, r.stderr);
        results.add(/^Result: .*$/m.exec(r.stdout)![0]);
      }
    }
    assert.deepEqual([...results], ['Result: {"sum":"9223372036854775807"}']);
  });

  it("a deadline past what one Node timer holds (2^31 − 1 ms) is kept, and the header shows the bytes it carries", async () => {
    for (const transport of ["tcp", "udp", "http2"]) {
      const r = await run(["rpc", "walkthrough", "--plain", "--transport", transport, "--method", "sleep", "--request", '{"millis":50}', "--timeout", "3000000000"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /^Result: \{"sleptMillis":\d+\}$/m);
      assert.doesNotMatch(r.stderr, /TimeoutOverflowWarning/);
      if (transport !== "http2") assert.match(r.stdout, /^ {6}\S{4} {2}b2 d0 5e 00 {14}timeout 3000000000 ms$/m);
    }
  });

  it("a sum past sint64 is INVALID_ARGUMENT naming the field, with either codec", async () => {
    for (const codec of ["protobuf", "json"]) {
      const r = await run(["rpc", "walkthrough", "--plain", "--codec", codec, "--request", '{"a":"9223372036854775807","b":"1"}']);
      assert.equal(r.code, 1);
      assert.match(unwrapped(r.stdout), /Result: ✗ INVALID_ARGUMENT: field sum: 9223372036854775807 \+ 1 = 9223372036854775808 is out of range; expected sint64/);
    }
  });

  it("--fault drop over TCP says, before the wait, how long the retries will take", async () => {
    const r = await run(["rpc", "walkthrough", "--plain", "--fault", "drop", "--timeout", "200"]);
    const note = unwrapped(r.stdout).indexOf("Over TCP nothing resends a lost message: the caller waits out its 200 ms deadline, then retries once on a new connection: up to 0.4 s in all.");
    assert.ok(note > 0, r.stdout);
    assert.ok(note < unwrapped(r.stdout).indexOf(" 1. client"), "said before the story of the call");
  });

  it("walkthrough output fits 100 columns", async () => {
    for (const args of [[], ["--method", "echo", "--transport", "http2"], ["--method", "echo", "--codec", "json"], ["--transport", "udp", "--fault", "drop", "--timeout", "300"]]) {
      const r = await run(["rpc", "walkthrough", "--plain", ...args]);
      assert.ok(maxWidth(r.stdout) <= 100, `${args.join(" ")}: a line of ${maxWidth(r.stdout)} columns`);
    }
  });
});

/** The walkthrough on a pseudo-terminal (util-linux `script`), as a person at a keyboard runs it. */
function onTerminal(env: NodeJS.ProcessEnv, key: string): Promise<{ code: number | null; ms: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-qfec", `${process.execPath} ${BIN} rpc walkthrough`, "/dev/null"], { env: { ...process.env, ...env }, stdio: "pipe" });
    let output = "";
    let sentAt = 0;
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (!sentAt && output.includes("(Enter: next step)")) {
        sentAt = Date.now();
        child.stdin.write(key);
      }
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`still running 10 s after the key:\n${output.slice(-500)}`));
    }, 10_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - sentAt, output });
    });
  });
}

describe("csi-lab rpc walkthrough on a terminal", function () {
  before(function () {
    // util-linux's `script` gives the walkthrough a pseudo-terminal; a sandbox without /dev/pts cannot.
    if (spawnSync("script", ["-qec", "true", "/dev/null"]).status !== 0) {
      console.log("      (skipped: no pseudo-terminal here: needs `script` from util-linux and /dev/pts)");
      this.skip();
    }
  });

  it("Ctrl-C ends it at once, servers and all", async () => {
    const r = await onTerminal({ NO_COLOR: "" }, "\x03");
    assert.equal(r.code, 130);
    assert.ok(r.ms < 2000, `ended ${r.ms} ms after Ctrl-C`);
  });

  it("Ctrl-D ends it at once", async () => {
    const r = await onTerminal({ NO_COLOR: "" }, "\x04");
    assert.equal(r.code, 0);
    assert.ok(r.ms < 2000, `ended ${r.ms} ms after Ctrl-D`);
  });

  it("is in colour, unless NO_COLOR is set", async () => {
    const sgr = /\x1b\[[0-9;]*m/;
    assert.match((await onTerminal({ NO_COLOR: "" }, "\x03")).output, sgr);
    assert.doesNotMatch((await onTerminal({ NO_COLOR: "1" }, "\x03")).output, sgr);
  });
});
