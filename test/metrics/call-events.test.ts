// GET /events on the metrics port: every CSI call the driver finishes, as
// Server-Sent Events, secrets redacted; a bounded ring for late readers; a
// slow reader skipped, never waited for.
import { strict as assert } from "node:assert";
import { EventEmitter } from "node:events";
import * as http from "node:http";
import { hostname } from "node:os";
import { Code } from "../../src/csi/errors";
import { CallEvents, MAX_BUFFERED, RING_SIZE, type CallEvent } from "../../src/server/call-events";
import { REDACTED } from "../../src/server/redact";
import { mountCapability } from "../sanity/harness";
import { readSse } from "../lab/sse";
import { createVolumeRequest, startDriverWithMetrics, useDriverWithMetrics } from "./driver-process";

describe("metrics: the live call stream GET /events", () => {
  const live = useDriverWithMetrics();

  it("sends each call as it finishes: method, volume, code, duration, request and reply with secrets redacted", async () => {
    const sse = await readSse(`${live.driver.httpBase}/events`);
    try {
      const created = await live.client.controller.createVolume({ ...createVolumeRequest("events-vol-1"), secrets: { password: "hunter2" } });
      const volumeId = created.volume!.volumeId;
      await live.client.controller.deleteVolume({ volumeId, secrets: {} });
      const events = await sse.until((es) => es.some((e) => (e.data as CallEvent).method === "DeleteVolume"));
      const [create, del] = events.map((e) => e.data as CallEvent).filter((e) => e.method === "CreateVolume" || e.method === "DeleteVolume");
      assert.equal(create!.service, "Controller");
      assert.equal(create!.code, "OK");
      assert.equal(create!.volumeId, volumeId, "a CreateVolume is grouped under the volume its reply names");
      assert.equal(create!.fields["name"], "events-vol-1");
      assert.deepEqual((create!.request as { secrets: unknown }).secrets, { password: REDACTED });
      assert.equal((create!.response as { volume: { volumeId: string } }).volume.volumeId, volumeId);
      assert.ok(create!.ms > 0 && create!.seq < del!.seq);
      assert.equal(del!.volumeId, volumeId);
      assert.doesNotMatch(JSON.stringify(events), /hunter2/);
    } finally {
      sse.close();
    }
  });

  it("a failed call comes with its code and message; a reader that comes late gets the calls before it", async () => {
    await assert.rejects(live.client.controller.createVolume(createVolumeRequest("")));
    const sse = await readSse(`${live.driver.httpBase}/events`);
    try {
      const events = await sse.until((es) => es.some((e) => (e.data as CallEvent).code === "INVALID_ARGUMENT"));
      const failed = events.map((e) => e.data as CallEvent).find((e) => e.code === "INVALID_ARGUMENT")!;
      assert.match(failed.error!, /name/);
      assert.ok(events.some((e) => (e.data as CallEvent).fields["name"] === "events-vol-1"), "the earlier calls are replayed from the ring");
    } finally {
      sse.close();
    }
  });

  it("keeps a request of megabytes as its size only, and logs no more than a KiB of any field", async () => {
    const huge = "h".repeat(2 * 1024 * 1024);
    await assert.rejects(live.client.controller.createVolume(createVolumeRequest(huge)));
    const sse = await readSse(`${live.driver.httpBase}/events`);
    try {
      const events = await sse.until((es) => es.some((e) => JSON.stringify(e.data).includes("omitted")));
      const failed = events.map((e) => e.data as CallEvent).find((e) => JSON.stringify(e.request).includes("omitted"))!;
      assert.match((failed.request as { omitted: string }).omitted, /a request of \d{7} bytes/);
      assert.ok(JSON.stringify(failed).length < 4096, "the event is small");
    } finally {
      sse.close();
    }
    const logged = () => live.driver.logs.find((l) => l.includes('"rpc failed"') && l.includes("hhhh"));
    for (let i = 0; i < 50 && !logged(); i++) await new Promise((r) => setTimeout(r, 20));
    const line = logged()!;
    assert.ok(line, "the failed call is logged");
    assert.ok(line.length < 4096, `a log line of ${line.length} characters`);
    assert.match(line, /\(2097152 characters\)/);
  });

  it("streams no more than a KiB of a request's key field, as the log does", async () => {
    const long = "l".repeat(300 * 1024);
    await assert.rejects(live.client.controller.createVolume(createVolumeRequest(long)));
    const sse = await readSse(`${live.driver.httpBase}/events`);
    try {
      const events = await sse.until((es) => es.some((e) => (e.data as CallEvent).fields["name"]?.startsWith("lll") === true));
      const failed = events.map((e) => e.data as CallEvent).find((e) => e.fields["name"]?.startsWith("lll"))!;
      assert.ok(failed.fields["name"]!.length < 1100, `a field of ${failed.fields["name"]!.length} characters`);
      assert.match(failed.fields["name"]!, /\(307200 characters\)$/);
      assert.equal((failed.request as { name: string }).name, long, "the request itself, under 512 KiB, is kept whole");
    } finally {
      sse.close();
    }
  });

  it("keeps a reply of megabytes as its size only, as a request is", async () => {
    const { volume } = await live.client.controller.createVolume(createVolumeRequest("events-big-reply"));
    const sse = await readSse(`${live.driver.httpBase}/events`);
    try {
      // ValidateVolumeCapabilities echoes the capabilities it confirms: 80,000 make a reply of about 640 KiB.
      const volumeCapabilities = new Array(80_000).fill(mountCapability());
      const reply = await live.client.controller.validateVolumeCapabilities({ volumeId: volume!.volumeId, volumeCapabilities, volumeContext: {}, parameters: {}, mutableParameters: {}, secrets: {} });
      assert.equal(reply.confirmed?.volumeCapabilities?.length, 80_000, "the caller gets the whole reply");
      const events = await sse.until((es) => es.some((e) => (e.data as CallEvent).method === "ValidateVolumeCapabilities"));
      const validated = events.map((e) => e.data as CallEvent).find((e) => e.method === "ValidateVolumeCapabilities")!;
      assert.match((validated.response as { omitted: string }).omitted, /^a reply of \d{6} bytes$/);
      assert.ok(JSON.stringify(validated).length < 4096, `an event of ${JSON.stringify(validated).length} characters`);
      assert.equal(validated.volumeId, volume!.volumeId);
    } finally {
      sse.close();
    }
  });

  it("a reader that comes late and cannot take the ring at once is told how many calls it missed", async () => {
    const { volume } = await live.client.controller.createVolume(createVolumeRequest("events-late-reader"));
    // 30,000 capabilities: a request and a reply of about 240 KiB each, both kept; the replay of the ring passes the reader's buffer with it.
    const volumeCapabilities = new Array(30_000).fill(mountCapability());
    await live.client.controller.validateVolumeCapabilities({ volumeId: volume!.volumeId, volumeCapabilities, volumeContext: {}, parameters: {}, mutableParameters: {}, secrets: {} });
    for (let i = 0; i < 5; i++) await live.client.identity.getPluginInfo({});
    const sse = await readSse(`${live.driver.httpBase}/events`);
    try {
      await live.client.identity.probe({}); // after the replay: the reader has caught up by then, or is told what it missed
      const events = await sse.until((es) => es.some((e) => (e.data as CallEvent).method === "Probe"));
      const infos = events.filter((e) => e.event === "message" && (e.data as CallEvent).method === "GetPluginInfo").length;
      const missed = events.filter((e) => e.event === "gap").reduce((n, e) => n + (e.data as { missed: number }).missed, 0);
      assert.ok(infos + missed >= 5, `${infos} GetPluginInfo events seen and ${missed} said missed, of 5`);
    } finally {
      sse.close();
    }
  });
});

/** GET base+path with these headers: the status and, unless it is a stream, the body. */
function getWith(base: string, p: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(base + p, { headers }, (res) => {
      if (res.headers["content-type"] === "text/event-stream") {
        req.destroy();
        return resolve({ status: res.statusCode ?? 0, body: "" });
      }
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
  });
}

describe("metrics: /events answers only requests naming this machine (DNS rebinding)", () => {
  const live = useDriverWithMetrics();
  const port = () => new URL(live.driver.httpBase).port;

  it("refuses /events to a Host that is a name other than localhost, whatever the port", async () => {
    for (const host of [`evil.example:${port()}`, "evil.example", `localhost.evil.example:${port()}`, `${hostname()}x:${port()}`]) {
      const r = await getWith(live.driver.httpBase, "/events", { host });
      assert.equal(r.status, 421, host);
      assert.match(r.body, /localhost|IP address/, host);
    }
  });

  it("serves /events to an IP literal or localhost at any port (kubectl port-forward 19810:9810)", async () => {
    for (const host of [`127.0.0.1:${port()}`, `LocalHost:${port()}`, "localhost:19810", "[::1]:9810", "10.244.1.7:9810"]) {
      assert.equal((await getWith(live.driver.httpBase, "/events", { host })).status, 200, host);
    }
  });

  it("refuses /events to a page from elsewhere (its Origin), not to one of this machine's", async () => {
    const host = `127.0.0.1:${port()}`;
    for (const origin of ["http://evil.example", `http://evil.example:${port()}`, "null", "file://"]) {
      const r = await getWith(live.driver.httpBase, "/events", { host, origin });
      assert.equal(r.status, 403, origin);
    }
    for (const origin of ["http://localhost:7070", "http://127.0.0.1:7070"]) {
      assert.equal((await getWith(live.driver.httpBase, "/events", { host, origin })).status, 200, origin);
    }
  });

  it("still answers /metrics and /healthz whatever the Host (Prometheus scrapes pod IPs and Service names, kubelet probes)", async () => {
    for (const host of ["csi-lab-node.csi-lab.svc.cluster.local:9810", "evil.example", `127.0.0.1:${port()}`]) {
      assert.equal((await getWith(live.driver.httpBase, "/metrics", { host })).status, 200, host);
      assert.equal((await getWith(live.driver.httpBase, "/healthz", { host, origin: "http://evil.example" })).status, 200, host);
    }
  });

  it("listening on every interface (--metrics-address :9810, as deployed), also answers to the machine's own name", async () => {
    const wide = await startDriverWithMetrics([], undefined, ":0");
    try {
      const p = new URL(wide.httpBase).port;
      for (const host of [`${hostname()}:${p}`, `localhost:${p}`, `192.0.2.7:${p}`]) assert.equal((await getWith(wide.httpBase, "/events", { host })).status, 200, host);
      assert.equal((await getWith(wide.httpBase, "/events", { host: `evil.example:${p}` })).status, 421);
    } finally {
      await wide.stop();
    }
  });
});

/** A response that never drains: what a reader that stopped reading looks like to the server. */
class StuckResponse extends EventEmitter {
  writableLength = 0;
  written: string[] = [];
  writeHead(): void {}
  write(chunk: string): boolean {
    this.written.push(chunk);
    this.writableLength += chunk.length;
    return false;
  }
  end(): void {}
}

const record = (n: number) => ({ service: "Node", method: "NodeGetInfo", code: Code.OK, seconds: 0.001, request: { n } });

describe("the call stream's bounds", () => {
  it("keeps the last RING_SIZE calls, and nothing else, while nobody reads", () => {
    const events = new CallEvents();
    for (let i = 0; i < RING_SIZE * 3; i++) events.publish(record(i));
    const recent = events.recent();
    assert.equal(recent.length, RING_SIZE);
    assert.deepEqual(recent[0]!.request, { n: RING_SIZE * 2 });
  });

  it("skips a reader whose socket holds more than MAX_BUFFERED bytes, then tells it how many calls it missed", async () => {
    const events = new CallEvents();
    const res = new StuckResponse();
    events.serve({ url: "/events" } as http.IncomingMessage, res as unknown as http.ServerResponse);
    res.writableLength = MAX_BUFFERED + 1;
    for (let i = 0; i < 10; i++) events.publish(record(i));
    await new Promise((r) => setImmediate(r));
    const before = res.written.length;
    res.writableLength = 0; // it caught up
    events.publish(record(10));
    await new Promise((r) => setImmediate(r));
    const after = res.written.slice(before).join("");
    assert.match(after, /event: gap\ndata: \{"missed":10\}/);
    assert.match(after, /"n":10/);
    res.emit("close");
    assert.equal(events.readerCount, 0);
  });
});
