// GET /events on the metrics port: every CSI call the driver finishes, as
// Server-Sent Events, secrets redacted; a bounded ring for late readers; a
// slow reader skipped, never waited for.
import { strict as assert } from "node:assert";
import { EventEmitter } from "node:events";
import type * as http from "node:http";
import { Code } from "../../src/csi/errors";
import { CallEvents, MAX_BUFFERED, RING_SIZE, type CallEvent } from "../../src/server/call-events";
import { REDACTED } from "../../src/server/redact";
import { readSse } from "../lab/sse";
import { createVolumeRequest, useDriverWithMetrics } from "./driver-process";

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
