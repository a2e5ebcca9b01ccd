// Codec timings: encode and decode, our hand codec vs ts-proto vs JSON.
import { AddRequest, Sample } from "../../src/gen/rpc-demo";
import { CreateVolumeRequest } from "../../src/gen/csi";
import { messageType, protobufCodec, jsonCodec, tsProtoCodec, type Codec, type MessageType } from "../../src/rpc-demo/codecs/codec";

export interface CodecFigure {
  message: string;
  bytes: Record<string, number>;
  /** codec → op → ns per message (median of rounds) */
  ns: Record<string, { encode: number; decode: number }>;
}

const SAMPLE: Sample = {
  i32: 150, i64: -(2n ** 40n), u32: 4_000_000_000, u64: 2n ** 50n, s32: -300, s64: -12345678901n, f32: 7, f64: 2n ** 40n, sf32: -7, sf64: -(2n ** 41n),
  fl: 1.5, db: Math.PI, flag: true, text: "the quick brown fox", blob: Buffer.from("0123456789abcdef"), color: 2, point: { x: 10, y: -20 },
  numbers: [1, 2, 3, 300, -1, 70000], deltas: [-1n, 1n, -1000n, 1000n], readings: [0.5, 1.25, 2.5], tags: ["alpha", "beta", "gamma"],
  path: [{ x: 1, y: 2 }, { x: 3, y: 4 }, { x: 5, y: 6 }], labels: { zone: "eu-1", tier: "fast" }, id: 123456789n,
};

const CREATE_VOLUME: CreateVolumeRequest = {
  name: "pvc-8f2c6c0e-7a4b-4d8e-9a51-1f3b6e2d4c7a",
  capacityRange: { requiredBytes: 10 * 2 ** 30 },
  volumeCapabilities: [{ mount: { fsType: "ext4", mountFlags: ["noatime"] }, accessMode: { mode: 1 } }],
  parameters: { "csi.storage.k8s.io/pvc/name": "data", "csi.storage.k8s.io/pvc/namespace": "default" },
  accessibilityRequirements: { requisite: [{ segments: { "topology.csi-lab/node": "n1" } }], preferred: [{ segments: { "topology.csi-lab/node": "n1" } }] },
};

const ROUNDS = 15;

function timeNs(fn: () => void, iterations: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - t0) / iterations;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/**
 * The codecs take turns, round after round, so a burst of load from
 * anything else on the machine hits them alike; each figure is the median
 * of its rounds.
 */
function bench<T>(name: string, type: MessageType<T>, msg: T, iterations: number): CodecFigure {
  const codecs: Codec[] = [protobufCodec, tsProtoCodec, jsonCodec];
  const fig: CodecFigure = { message: name, bytes: {}, ns: {} };
  let sink = 0;
  const ops = codecs.map((c) => {
    const bytes = c.encode(type, msg);
    fig.bytes[c.name] = bytes.length;
    return {
      codec: c.name,
      encode: () => void (sink += c.encode(type, msg).length),
      decode: () => void (sink += c.decode(type, bytes) === undefined ? 1 : 0),
      times: { encode: [] as number[], decode: [] as number[] },
    };
  });
  for (const op of ops) timeNs(op.encode, iterations), timeNs(op.decode, iterations); // warm up: let the JIT settle
  for (let r = 0; r < ROUNDS; r++) {
    for (const op of ops) {
      op.times.encode.push(timeNs(op.encode, iterations / 5));
      op.times.decode.push(timeNs(op.decode, iterations / 5));
    }
  }
  for (const op of ops) fig.ns[op.codec] = { encode: median(op.times.encode), decode: median(op.times.decode) };
  if (sink < 0) throw new Error("unreachable");
  return fig;
}

export function codecFigures(): CodecFigure[] {
  return [
    bench("AddRequest (2 sint64)", messageType("csilab.rpcdemo.v1.AddRequest", AddRequest), { a: 2n, b: 40n }, 200_000),
    bench("Sample (every wire type)", messageType("csilab.rpcdemo.v1.Sample", Sample), SAMPLE, 50_000),
    bench("CSI CreateVolumeRequest", messageType("csi.v1.CreateVolumeRequest", CreateVolumeRequest), CREATE_VOLUME, 50_000),
  ];
}
