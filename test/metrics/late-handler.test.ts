// A call whose client stopped waiting — its deadline passed, or it cancelled — while the
// handler went on and later finished OK. The client never got that OK: /events, /metrics
// and the log say what it got (DEADLINE_EXCEEDED, CANCELLED), with a note that the handler
// finished later. (The late reply itself never goes out: the call is answered at its deadline.)
//
// The real driver, its real HTTP side door, and a real slow call: NodeStageVolume of a
// shared volume runs mount(8) (here --mount-program, a stand-in that waits for the test
// before it mounts), and does not stop at the call's deadline: a mount that touches a share
// has a deadline of its own (--mount-timeout).
import { strict as assert } from "node:assert";
import { existsSync, promises as fsp } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { connect, type CsiClient } from "../../src/client/csi-client";
import { NodeStageVolumeRequest } from "../../src/gen/csi";
import type { CallEvent } from "../../src/server/call-events";
import { Code, expectCode, isMounted, Mode, mountCapability, shellQuote, uniqueName } from "../sanity/harness";
import { readSse } from "../lab/sse";
import { get, sample, startDriverWithMetrics, type RunningDriver } from "./driver-process";

const RWX = mountCapability(Mode.MULTI_NODE_MULTI_WRITER);

describe("a call whose handler finishes after the client stopped waiting", () => {
  let bin: string;
  let driver: RunningDriver;
  let client: CsiClient;
  const at = (name: string) => path.join(bin, name);

  before(async () => {
    bin = await fsp.mkdtemp(path.join(tmpdir(), "late-handler-"));
    // mount(8), held while <bin>/hold exists: it says it started, and waits for <bin>/release.
    const script = `#!/bin/bash
if [ -e ${shellQuote(at("hold"))} ]; then
  touch ${shellQuote(at("started"))}
  while [ ! -e ${shellQuote(at("release"))} ]; do sleep 0.02; done
fi
exec mount "$@"
`;
    await fsp.writeFile(at("mount"), script, { mode: 0o755 });
    driver = await startDriverWithMetrics(["--mount-program", at("mount")]);
    await fsp.mkdir(path.join(driver.dir, "share"), { recursive: true });
    client = connect(driver.endpoint);
  });
  after(async () => {
    client?.close();
    await driver?.stop();
    await fsp.rm(bin, { recursive: true, force: true });
  });

  /** A shared volume, and a NodeStageVolume request for it whose mount(8) will wait for release(). */
  async function heldStage(): Promise<NodeStageVolumeRequest & { volumeId: string; stagingTargetPath: string }> {
    for (const f of ["started", "release"]) await fsp.rm(at(f), { force: true });
    const params = { backend: "nfs", share: path.join(driver.dir, "share") };
    const { volume } = await client.controller.createVolume({ name: uniqueName("late"), volumeCapabilities: [RWX], parameters: params });
    await fsp.writeFile(at("hold"), "");
    const stagingTargetPath = path.join(driver.dir, "kubelet", uniqueName("stage"));
    return { volumeId: volume!.volumeId!, volumeContext: volume!.volumeContext, stagingTargetPath, volumeCapability: RWX };
  }

  /** Let the held mount(8) go on, once it has started. */
  async function release(): Promise<void> {
    while (!existsSync(at("started"))) await new Promise((r) => setTimeout(r, 20));
    await fsp.rm(at("hold"));
    await fsp.writeFile(at("release"), "");
  }

  /** The NodeStageVolume event of this staging path, once the handler has finished. */
  async function stageEvent(stagingTargetPath: string): Promise<CallEvent> {
    const sse = await readSse(`${driver.httpBase}/events`);
    try {
      const mine = (e: CallEvent) => e.method === "NodeStageVolume" && e.fields["stagingTargetPath"] === stagingTargetPath;
      const events = await sse.until((es) => es.some((e) => mine(e.data as CallEvent)), 20_000);
      return events.map((e) => e.data as CallEvent).find(mine)!;
    } finally {
      sse.close();
    }
  }

  /** NodeStageVolume calls counted under `code` on /metrics. */
  const staged = async (code: string) => {
    const page = (await get(driver.httpBase, "/metrics")).body;
    return sample(page, "csi_lab_rpc_requests_total", { method: "NodeStageVolume", code }) ?? 0;
  };

  it("past its deadline is recorded DEADLINE_EXCEEDED, as the client was answered, with a note that the handler finished OK later", async () => {
    const req = await heldStage();
    const before = { ok: await staged("OK"), late: await staged("DEADLINE_EXCEEDED") };
    await expectCode(client.node.nodeStageVolume(req, { timeoutMs: 300 }), Code.DEADLINE_EXCEEDED);
    await release();
    const event = await stageEvent(req.stagingTargetPath);
    assert.equal(event.code, "DEADLINE_EXCEEDED");
    assert.match(event.error ?? "", /deadline passed/);
    assert.match(event.error ?? "", /the handler finished later, [\d.]+ ms after the call came, with OK \(not sent\)/);
    assert.equal(event.response, undefined, "no reply went out");
    assert.equal(await isMounted(req.stagingTargetPath), true, "the handler did finish its work");
    assert.equal(await staged("DEADLINE_EXCEEDED"), before.late + 1, "the metrics count the code the client got");
    assert.equal(await staged("OK"), before.ok, "and not the handler's OK");
    const logged = () => driver.logs.find((l) => l.includes('"rpc":"NodeStageVolume"') && l.includes('"code":"DEADLINE_EXCEEDED"'));
    for (let i = 0; i < 50 && !logged(); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(logged() ?? "", /"msg":"rpc failed"/, "the log line says DEADLINE_EXCEEDED");
    await client.node.nodeUnstageVolume({ volumeId: req.volumeId, stagingTargetPath: req.stagingTargetPath });
  });

  /**
   * NodeStageVolume as a bare HTTP/2 request, reset (RST_STREAM CANCEL, as grpc-go and grpc-js do) once its mount(8)
   * has started; `timeout`, its grpc-timeout. Resolves once the driver has read the reset.
   */
  async function stageAndReset(req: NodeStageVolumeRequest, timeout?: string): Promise<void> {
    const session = http2.connect("http://localhost", { createConnection: () => net.connect(driver.endpoint.slice("unix://".length)) });
    try {
      const body = Buffer.from(NodeStageVolumeRequest.encode(req).finish());
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(body.length, 1);
      const headers = { ":method": "POST", ":path": "/csi.v1.Node/NodeStageVolume", "content-type": "application/grpc", te: "trailers" };
      const stream = session.request(timeout ? { ...headers, "grpc-timeout": timeout } : headers);
      stream.on("error", () => {});
      stream.end(Buffer.concat([prefix, body]));
      while (!existsSync(at("started"))) await new Promise((r) => setTimeout(r, 20));
      stream.close(http2.constants.NGHTTP2_CANCEL);
      // The driver has read the reset once it answers a PING sent after it.
      await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
    } finally {
      session.close();
    }
  }

  it("cancelled by its client is recorded CANCELLED, with a note that the handler finished OK later", async () => {
    const req = await heldStage();
    await stageAndReset(req);
    await release();
    const event = await stageEvent(req.stagingTargetPath);
    assert.equal(event.code, "CANCELLED");
    assert.match(
      event.error ?? "",
      /^the client cancelled the call; the handler finished later, [\d.]+ ms after the call came, with OK \(not sent\)$/,
    );
    assert.equal(event.response, undefined);
    await client.node.nodeUnstageVolume({ volumeId: req.volumeId, stagingTargetPath: req.stagingTargetPath });
  });

  it("reset by its client just before the driver's deadline is recorded DEADLINE_EXCEEDED: the client's deadline timer reset it", async () => {
    // The client counts its deadline from when it sent the request, the driver from when it read it: the client's comes first.
    const req = await heldStage();
    await stageAndReset(req, "800m");
    await release();
    const event = await stageEvent(req.stagingTargetPath);
    assert.equal(event.code, "DEADLINE_EXCEEDED");
    assert.match(event.error ?? "", /^the call's deadline passed; the handler finished later, [\d.]+ ms after the call came, with OK \(not sent\)$/);
    await client.node.nodeUnstageVolume({ volumeId: req.volumeId, stagingTargetPath: req.stagingTargetPath });
  });
});
