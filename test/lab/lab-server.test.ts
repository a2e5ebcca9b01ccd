// `csi-lab lab` without a browser: its help and flags, a page made only of
// the package's own files (nothing from the network), and an API that
// answers only its own page.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { PROTO_DIR } from "../../src/rpc-demo/codecs/schema";
import { startLab, type RunningLab } from "../../src/lab/server";
import type { CallStory } from "../../src/lab/protocol";

const BIN = path.join(PROTO_DIR, "..", "bin", "csi-lab.js");
// A lab that should have been refused but serves instead is killed, not waited for.
const run = (...args: string[]) => promisify(execFile)(process.execPath, [BIN, ...args], { timeout: 20_000 });

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      })
      .on("error", reject);
  });
}

describe("csi-lab lab: the command", () => {
  it("--help says what it serves, its flags and their defaults", async () => {
    const { stdout } = await run("lab", "--help");
    for (const s of ["--host HOST", "127.0.0.1", "--port PORT", "7070", "--driver HOST:PORT", "no network needed", "private mount namespace"]) assert.ok(stdout.includes(s), s);
    assert.match((await run("--help")).stdout, /csi-lab lab \[flags\]/);
  });

  it("a bad flag is one line and exit status 2", async () => {
    const bad = [["--bogus"], ["--port", "http"], ["--port", "70000"], ["--port", "-1"], ["--port", "0", "--port", "1"], ["--port", "0", "--driver", "not an address"]];
    // A host that is none ("" would listen on every interface), or not this machine's (192.0.2.1, TEST-NET-1).
    for (const host of ["", "not a host!", "127.0.0.1:80", "[::1]", "192.0.2.1"]) bad.push(["--port", "0", "--host", host]);
    for (const args of bad) {
      const err = await run("lab", ...args).then(() => undefined, (e: { code: number; stderr: string }) => e);
      assert.equal(err?.code, 2, `${JSON.stringify(args)}: ${err?.stderr}`);
      assert.match(err!.stderr, /^csi-lab: lab: [^\n]+\n$/);
    }
  });

  it("a port in use is one line in our words, exit 1", async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = holder.address() as net.AddressInfo;
      const err = await run("lab", "--port", String(port)).then(() => undefined, (e: { code: number; stderr: string }) => e);
      assert.equal(err?.code, 1);
      assert.equal(err!.stderr, `csi-lab: lab: port ${port} on 127.0.0.1 is already in use: pick another --port, or stop what holds it\n`);
    } finally {
      holder.close();
    }
  });
});

describe("csi-lab lab: the server", () => {
  let lab: RunningLab;
  let token: string;
  before(async () => {
    lab = await startLab({ host: "127.0.0.1", port: 0, driver: "127.0.0.1:9810" });
    token = /name="lab-token" content="([0-9a-f]{32})"/.exec((await get(lab.url)).body)![1]!;
  });
  after(async () => lab?.close());

  it("serves a page made of its own files only: every script it loads is there, nothing names another host", async () => {
    const page = (await get(lab.url)).body;
    const seen = new Set<string>();
    const queue = ["/js/main.js", "/lab.css"];
    while (queue.length) {
      const p = queue.shift()!;
      if (seen.has(p)) continue;
      seen.add(p);
      const r = await get(lab.url.replace(/\/$/, "") + p);
      assert.equal(r.status, 200, p);
      assert.doesNotMatch(r.body, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, `${p} loads nothing from the network`);
      for (const m of r.body.matchAll(/from "\.\/([a-z-]+\.js)"/g)) queue.push(`/js/${m[1]}`);
    }
    assert.ok(seen.size >= 9, [...seen].join(" "));
    assert.doesNotMatch(page, /https?:\/\//);
  });

  it("answers a request target that is no URL (GET //[) with 400, and goes on serving", async () => {
    const { port } = new URL(lab.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect(Number(port), "127.0.0.1", () => s.write(`GET //[ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`));
      let got = "";
      s.setEncoding("utf8").on("data", (c: string) => (got += c));
      s.on("end", () => resolve(got));
      s.on("error", reject);
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.equal((await get(lab.url)).status, 200);
  });

  it("forbids other pages to frame it (a framed lab, token and all, could be clicked through under a disguise)", async () => {
    const page = await get(lab.url);
    assert.equal(page.headers["x-frame-options"], "DENY");
    assert.equal(page.headers["content-security-policy"], "frame-ancestors 'none'");
  });

  it("answers the API only with the page's token, and only to its own address", async () => {
    assert.equal((await get(`${lab.url}api/examples`)).status, 403);
    assert.equal((await get(`${lab.url}api/examples?token=${token}`, { host: "evil.example:80" })).status, 421);
    const ok = await get(`${lab.url}api/examples?token=${token}`);
    assert.equal(ok.status, 200);
    assert.ok((JSON.parse(ok.body) as { name: string }[]).some((e) => e.name === "pvc-pod"));
  });

  it("runs a call with the playground's engine and sends its story; refuses what the engine refuses", async () => {
    const r = await get(`${lab.url}api/call?token=${token}&method=add&codec=json&transport=udp&request=${encodeURIComponent('{"a":"9223372036854775806","b":1}')}`);
    assert.equal(r.status, 200, r.body);
    const story = JSON.parse(r.body) as CallStory;
    assert.deepEqual(story.result, { sum: "9223372036854775807" });
    assert.ok(story.steps.some((s) => s.layer === "handler" && s.event === "run"));
    const bad = await get(`${lab.url}api/call?token=${token}&method=add&request=${encodeURIComponent('{"a":1.5}')}`);
    assert.equal(bad.status, 400);
    assert.match(bad.body, /field a/);
  });

  it("answers 400 to choices refused while they are read (not JSON, an unknown codec, transport or fault), and keeps serving", async () => {
    for (const query of [`request=${encodeURIComponent("{not json")}`, "codec=bogus", "transport=carrier-pigeon", "fault=bogus"]) {
      const r = await get(`${lab.url}api/call?token=${token}&method=add&${query}`);
      assert.equal(r.status, 400, `${query}: ${r.body}`);
      assert.ok((JSON.parse(r.body) as { error: string }).error, query);
    }
    assert.equal((await get(`${lab.url}api/examples?token=${token}`)).status, 200);
  });

  it("listening everywhere (--host 0.0.0.0), answers at the machine's addresses and name, and still to no other name", async () => {
    const wide = await startLab({ host: "0.0.0.0", port: 0, driver: "127.0.0.1:9810" });
    try {
      const port = new URL(wide.url).port;
      const at = `http://127.0.0.1:${port}/`;
      for (const host of [`192.0.2.7:${port}`, `127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `${os.hostname()}:${port}`]) {
        assert.equal((await get(at, { host })).status, 200, host);
      }
      for (const host of [`evil.example:${port}`, `192.0.2.7:${Number(port) + 1}`, "192.0.2.7", `localhost.evil.example:${port}`]) {
        assert.equal((await get(at, { host })).status, 421, host);
      }
    } finally {
      await wide.close();
    }
  });

  it("proxies only host:port addresses to a driver's /events", async () => {
    for (const address of ["http://x/", "127.0.0.1", "a:b:c", "127.0.0.1:99999"]) {
      assert.equal((await get(`${lab.url}api/live?token=${token}&address=${encodeURIComponent(address)}`)).status, 400, address);
    }
    const r = await get(`${lab.url}api/live?token=${token}&address=127.0.0.1:1`);
    assert.equal(r.status, 502);
    assert.match(r.body, /cannot reach a driver at 127\.0\.0\.1:1/);
  });

  it("passes on why a driver refused its /events (a name it does not answer to)", async () => {
    const refusing = http.createServer((_req, res) => {
      res.writeHead(421, { "content-type": "text/plain" });
      res.end("/events answers only to an IP address, localhost or this machine's name\n");
    });
    await new Promise<void>((resolve) => refusing.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = refusing.address() as net.AddressInfo;
      const r = await get(`${lab.url}api/live?token=${token}&address=127.0.0.1:${port}`);
      assert.equal(r.status, 502);
      assert.match(r.body, /answered 421 for \/events: \/events answers only to an IP address, localhost/);
    } finally {
      refusing.close();
    }
  });
});
