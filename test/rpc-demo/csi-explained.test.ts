// `csi-lab rpc csi` sends a real CreateVolume to a real csi-lab driver and
// narrates it: gRPC path, protobuf bytes with CSI's field names, status
// trailers; then a retry (same volume) and a conflict. It deletes the volume
// it made — at the end, after an error, on Ctrl-C — reaches a driver on a
// unix socket or on tcp://, and fits a projector's 100 columns.
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { messageType, protobufCodec } from "../../src/rpc-demo/codecs/codec";
import { PROTO_DIR } from "../../src/rpc-demo/codecs/schema";
import { Http2Client } from "../../src/rpc-demo/transports/http2-client";
import { csiExplained } from "../../src/rpc-demo/walkthrough/csi-explained";
import { freePort } from "../../src/replay/processes";

const BIN = path.join(PROTO_DIR, "..", "bin", "csi-lab.js");

interface Driver {
  readonly endpoint: string;
  volumes(): Promise<string[]>;
  /** Freeze and thaw the driver process (SIGSTOP/SIGCONT): its calls wait meanwhile. */
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
}

/** A csi-lab driver of the user's, on a unix socket or tcp://, in a temporary directory. */
async function userDriver(kind: "unix" | "tcp"): Promise<Driver> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-rpc-test-"));
  const endpoint = kind === "unix" ? `unix://${path.join(dir, "csi.sock")}` : `tcp://127.0.0.1:${await freePort()}`;
  const child: ChildProcess = spawn(process.execPath, [BIN, "driver", "--endpoint", endpoint, "--node-id", "n1", "--root", path.join(dir, "root")], { stdio: ["ignore", "ignore", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    let log = "";
    child.stderr!.on("data", (c: Buffer) => {
      log += c.toString();
      if (log.includes('"msg":"ready"')) resolve();
    });
    child.once("exit", (code) => reject(new Error(`driver exited ${code}: ${log}`)));
  });
  const connect = () => (kind === "unix" ? Http2Client.connect({ socketPath: endpoint.slice("unix://".length) }) : Http2Client.connect({ host: "127.0.0.1", port: Number(endpoint.split(":").at(-1)) }));
  return {
    endpoint,
    async volumes() {
      const client = await connect();
      try {
        const body = Buffer.from(protobufCodec.encode(messageType<object>("csi.v1.ListVolumesRequest"), {}));
        const res = await client.unary("/csi.v1.Controller/ListVolumes", "application/grpc", body, { timeoutMs: 5000 });
        const list = protobufCodec.decode(messageType<{ entries: { volume?: { volumeId: string } }[] }>("csi.v1.ListVolumesResponse"), res.body);
        return list.entries.map((e) => e.volume!.volumeId);
      } finally {
        await client.close();
      }
    },
    freeze: () => void child.kill("SIGSTOP"),
    thaw: () => void child.kill("SIGCONT"),
    async stop() {
      child.kill("SIGCONT");
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [BIN, ...args], (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
  );
}

describe("CSI explained", () => {
  it("narrates CreateVolume to the driver, its idempotent retry, and ALREADY_EXISTS", async () => {
    const out: string[] = [];
    const { ok } = await csiExplained({ endpoint: undefined, volumeName: "pvc-test-explained", plain: true, write: (t) => out.push(t) });
    const text = out.join("\n");
    assert.ok(ok, text);
    assert.match(text, /by name  \/csi\.v1\.Controller\/CreateVolume/);
    assert.match(text, /tag: field 1 name, wire type 2 LEN \(string\)/);
    assert.match(text, /length 18\n.*"pvc-test-explained" \(UTF-8\)/);
    assert.match(text, /enum SINGLE_NODE_WRITER = 1/);
    assert.match(text, /tag: field 2 volume_id, wire type 2 LEN \(string\)/);
    assert.match(text, /grpc-status: 0/);
    assert.match(text, /✓ Same volume_id hp-[0-9a-f]+: CreateVolume is idempotent by name/);
    assert.match(text, /grpc-status: 6/);
    assert.match(text, /The driver answers ALREADY_EXISTS: volume "pvc-test-explained" already exists/);
  });

  for (const kind of ["unix", "tcp"] as const) {
    it(`rpc csi --endpoint ${kind}://…: the user's driver is left as it was found, and every line fits 100 columns`, async () => {
      const driver = await userDriver(kind);
      try {
        assert.deepEqual(await driver.volumes(), []);
        const r = await cli(["rpc", "csi", "--plain", "--endpoint", driver.endpoint]);
        assert.equal(r.code, 0, r.stderr + r.stdout);
        assert.match(r.stdout, new RegExp(`CreateVolume to the csi-lab driver on ${driver.endpoint.replace(/[.[\]]/g, "\\$&")}`));
        assert.match(r.stdout, /== Clean-up[\s\S]*DeleteVolume "hp-[0-9a-f]+": done/);
        assert.deepEqual(await driver.volumes(), [], "no volume left behind");
        const widest = Math.max(...r.stdout.split("\n").map((l) => [...l].length));
        assert.ok(widest <= 100, `a line of ${widest} columns`);
        // --keep leaves it, when asked.
        await cli(["rpc", "csi", "--plain", "--keep", "--endpoint", driver.endpoint]);
        assert.equal((await driver.volumes()).length, 1);
      } finally {
        await driver.stop();
      }
    });
  }

  it("cleans up after an error half-way, and on Ctrl-C", async () => {
    const driver = await userDriver("unix");
    try {
      // The output breaks (a closed pipe, say) after the first CreateVolume.
      await assert.rejects(
        csiExplained({
          endpoint: driver.endpoint,
          volumeName: "pvc-broken-output",
          plain: true,
          write: (t) => {
            if (t.startsWith("\n== 2.")) throw new Error("the output went away");
          },
        }),
        /the output went away/,
      );
      assert.deepEqual(await driver.volumes(), [], "deleted after the error");

      // Ctrl-C while the retry is in flight: the driver is frozen so the
      // demo is caught in the middle, then thawed so the call can finish.
      const child = spawn(process.execPath, [BIN, "rpc", "csi", "--plain", "--endpoint", driver.endpoint], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let sent = false;
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        if (!sent && out.includes("== 1.")) {
          sent = true; // once: a second Ctrl-C would end it at once, without cleaning up
          driver.freeze();
          child.kill("SIGINT");
          setTimeout(() => driver.thaw(), 300);
        }
      });
      const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once("exit", (c, s) => resolve([c, s])));
      assert.equal(code, 130, `exit ${code} ${signal}:\n${out}`);
      assert.doesNotMatch(out, /== 3\./, "no new call after Ctrl-C");
      assert.match(out, /DeleteVolume "hp-[0-9a-f]+": done/);
      assert.deepEqual(await driver.volumes(), [], "deleted after Ctrl-C");
    } finally {
      await driver.stop();
    }
  });
});
