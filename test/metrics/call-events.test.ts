// GET /events on the metrics port: every CSI call the driver finishes, as
// Server-Sent Events, secrets redacted; a bounded ring for late readers; a
// slow reader skipped, never waited for.
import { strict as assert } from "node:assert";
import { EventEmitter } from "node:events";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { Code } from "../../src/csi/errors";
import { CallEvents, MAX_BUFFERED, RING_SIZE, TURN_BYTES, type CallEvent } from "../../src/server/call-events";
import { REDACTED } from "../../src/server/redact";
import { mountCapability } from "../sanity/harness";
import { readSse, type SseReader } from "../lab/sse";
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

  it("a reader that comes late is given the whole ring, in order, however much it holds", async () => {
    // RING_SIZE calls with a request of 100 KiB each: a replay of some 50 MiB, more than any socket buffer holds at once.
    const name = "r".repeat(100 * 1024);
    for (let i = 0; i < RING_SIZE; i += 32) {
      await Promise.all(Array.from({ length: 32 }, () => assert.rejects(live.client.controller.createVolume(createVolumeRequest(name)))));
    }
    const sse = await readSse(`${live.driver.httpBase}/events`);
    try {
      await live.client.identity.probe({}); // after the replay
      const events = await sse.until((es) => es.some((e) => (e.data as CallEvent).method === "Probe"), 60_000);
      assert.deepEqual(
        events.filter((e) => e.event !== "message"),
        [],
        "no gap",
      );
      const calls = events.map((e) => e.data as CallEvent);
      assert.equal(calls.length, RING_SIZE + 1, "the ring, then the Probe");
      calls.forEach((c, i) => assert.equal(c.seq, calls[0]!.seq + i, `event ${i} of ${calls.length}`));
      assert.ok(calls.slice(0, RING_SIZE).every((c) => c.fields["name"]?.startsWith("rrr")), "the ring holds the last RING_SIZE calls");
    } finally {
      sse.close();
    }
  });

  it("HEAD /events answers as GET would, without a body: 200 and the stream's content type", async () => {
    const r = await request(live.driver.httpBase, "/events", "HEAD", {});
    assert.equal(r.status, 200);
    assert.equal(r.headers["content-type"], "text/event-stream");
    assert.equal(r.headers["cache-control"], "no-store");
    assert.equal(r.body, "");
  });

  it("answers any other method on /events 405, naming GET and HEAD in Allow", async () => {
    for (const method of ["POST", "DELETE"]) {
      const r = await request(live.driver.httpBase, "/events", method, {});
      assert.equal(r.status, 405, method);
      assert.equal(r.headers["allow"], "GET, HEAD", method);
    }
  });
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** base+path by this method, with these headers: the status, the headers and the whole body. */
function request(base: string, p: string, method: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(base + p, { method, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

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

  it("refuses HEAD /events as it refuses GET, and serves it to this machine", async () => {
    assert.equal((await request(live.driver.httpBase, "/events", "HEAD", { host: `evil.example:${port()}` })).status, 421);
    assert.equal((await request(live.driver.httpBase, "/events", "HEAD", { host: `127.0.0.1:${port()}`, origin: "http://evil.example" })).status, 403);
    assert.equal((await request(live.driver.httpBase, "/events", "HEAD", { host: `localhost:${port()}` })).status, 200);
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

/**
 * A response that never drains unless told: what a reader that stopped reading looks like to the server.
 * `eager`: one whose socket takes every write at once.
 */
class StuckResponse extends EventEmitter {
  writableLength = 0;
  written: string[] = [];
  constructor(private readonly eager = false) {
    super();
  }
  writeHead(): void {}
  write(chunk: string): boolean {
    this.written.push(chunk);
    if (this.eager) return true;
    this.writableLength += chunk.length;
    return false;
  }
  ended = false;
  end(): void {
    this.ended = true;
  }
  /** The reader takes all that waited: the socket is empty again and says so. */
  drain(): void {
    this.writableLength = 0;
    this.emit("drain");
  }
}

const turn = () => new Promise((r) => setImmediate(r));

/** What a reader was sent, in order: each call's `n`, or "gap N". */
function sentTo(res: StuckResponse): (number | string)[] {
  return res.written.flatMap((chunk) =>
    chunk.split("\n\n").flatMap((block): (number | string)[] => {
      if (block.startsWith("event: gap\n")) return [`gap ${(JSON.parse(block.split("data: ")[1]!) as { missed: number }).missed}`];
      if (block.startsWith("data: ")) return [((JSON.parse(block.slice(6)) as CallEvent).request as { n: number }).n];
      return [];
    }),
  );
}

/** Let a stuck reader read until the driver has nothing more for it. */
async function readAll(res: StuckResponse): Promise<void> {
  for (let quiet = 0; quiet < 3; ) {
    const before = res.written.length;
    res.drain();
    await turn();
    quiet = res.written.length === before ? quiet + 1 : 0;
  }
}

const record = (n: number) => ({ service: "Node", method: "NodeGetInfo", code: Code.OK, seconds: 0.001, request: { n } });

describe("the call stream's bounds", () => {
  // Each reader goes away after its test, as a closed connection does (its keep-alive timer stops).
  const responses: StuckResponse[] = [];
  const reader = (events: CallEvents, method = "GET", eager = false): StuckResponse => {
    const res = new StuckResponse(eager);
    responses.push(res);
    events.serve({ url: "/events", method } as http.IncomingMessage, res as unknown as http.ServerResponse);
    return res;
  };
  afterEach(() => responses.splice(0).forEach((r) => r.emit("close")));

  it("keeps the last RING_SIZE calls, and nothing else, while nobody reads", () => {
    const events = new CallEvents();
    for (let i = 0; i < RING_SIZE * 3; i++) events.publish(record(i));
    const recent = events.recent();
    assert.equal(recent.length, RING_SIZE);
    assert.deepEqual(recent[0]!.request, { n: RING_SIZE * 2 });
  });

  // Events made for readers: each one's request is read once, to redact it.
  let built = 0;
  beforeEach(() => (built = 0));
  const counted = (n: number) => {
    const request = {
      get n() {
        built++;
        return n;
      },
    };
    return { ...record(n), request };
  };

  it("gives a late reader the ring an event at a time, the next when its socket drains: one that does not read holds no copy of it", async () => {
    const events = new CallEvents();
    for (let i = 0; i < RING_SIZE; i++) events.publish(counted(i));
    const res = reader(events);
    for (let i = 0; i < 10; i++) await turn();
    assert.equal(built, 1, "one event, then nothing until the socket drains");
    assert.deepEqual(sentTo(res), [0]);
    await readAll(res);
    assert.deepEqual(sentTo(res), Array.from({ length: RING_SIZE }, (_, i) => i), "the whole ring, in order");
    assert.equal(built, RING_SIZE, "each event built once");
    events.publish(record(RING_SIZE));
    await turn();
    assert.deepEqual(sentTo(res).slice(-1), [RING_SIZE], "then the calls as they finish");
  });

  it("makes each call's event once, however many readers come late: over real HTTP, three readers given the ring share its events", async () => {
    const events = new CallEvents();
    for (let i = 0; i < RING_SIZE; i++) events.publish(counted(i));
    const server = http.createServer((req, res) => events.serve(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
    const readers: SseReader[] = [];
    try {
      for (let r = 0; r < 3; r++) readers.push(await readSse(url));
      for (const r of readers) await r.until((es) => es.length === RING_SIZE);
      events.publish(counted(RING_SIZE));
      for (const r of readers) await r.until((es) => es.length === RING_SIZE + 1);
      for (const r of readers) {
        assert.deepEqual(
          r.events.map((e) => (e.data as CallEvent).request),
          Array.from({ length: RING_SIZE + 1 }, (_, n) => ({ n })),
          "each reader gets the whole ring, in order, then the next call",
        );
      }
      assert.equal(built, RING_SIZE + 1, "each event made once, not once for each reader");
    } finally {
      for (const r of readers) r.close();
      events.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("a reader that stops reading in the replay while the ring moves on is told how many calls it missed, then given the rest", async () => {
    const events = new CallEvents();
    for (let i = 0; i < RING_SIZE; i++) events.publish(record(i));
    const res = reader(events);
    // It took the first call; RING_SIZE more push the rest of the ring out before it reads again.
    for (let i = RING_SIZE; i < 2 * RING_SIZE; i++) events.publish(record(i));
    await readAll(res);
    assert.deepEqual(sentTo(res), [0, `gap ${RING_SIZE - 1}`, ...Array.from({ length: RING_SIZE }, (_, i) => RING_SIZE + i)]);
  });

  it("gives a reader whose socket takes everything the ring a turn at a time, no more than TURN_BYTES in each", async () => {
    const events = new CallEvents();
    for (let i = 0; i < RING_SIZE; i++) events.publish({ ...record(i), response: { pad: "p".repeat(8 * 1024) } });
    const res = reader(events, "GET", true);
    const bytes = () => res.written.reduce((n, c) => n + c.length, 0);
    let turns = 0;
    for (let last = -1; bytes() !== last; turns++) {
      last = bytes();
      assert.ok(bytes() < (turns + 1) * (TURN_BYTES + 9 * 1024), `${bytes()} bytes by turn ${turns}`);
      await turn();
    }
    assert.ok(turns > 10, `the ring of ${bytes()} bytes in ${turns} turns`);
    assert.deepEqual(sentTo(res), Array.from({ length: RING_SIZE }, (_, i) => i));
  });

  it("writes nothing more to a reader in the replay once the driver stops it", async () => {
    const events = new CallEvents();
    for (let i = 0; i < RING_SIZE; i++) events.publish(record(i));
    const res = reader(events);
    events.close();
    assert.ok(res.ended);
    await readAll(res);
    assert.deepEqual(sentTo(res), [0]);
  });

  it("HEAD is answered with the stream's headers and no reader is kept", () => {
    const events = new CallEvents();
    const res = reader(events, "HEAD");
    assert.ok(res.ended);
    assert.deepEqual(res.written, []);
    assert.equal(events.readerCount, 0);
  });

  it("skips a reader whose socket holds more than MAX_BUFFERED bytes, then tells it how many calls it missed", async () => {
    const events = new CallEvents();
    const res = reader(events);
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
