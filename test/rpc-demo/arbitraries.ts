// fast-check generators for the playground's messages, shared by the codec tests.
import fc from "fast-check";
import type { Point, Sample } from "../../src/gen/rpc-demo";

const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const uint32 = fc.integer({ min: 0, max: 0xffffffff });
// 64-bit fields are JavaScript numbers in our ts-proto config (forceLong=number).
const int64 = fc.oneof(fc.maxSafeInteger(), fc.integer({ min: -1000, max: 1000 }), fc.constantFrom(-(2 ** 53) + 1, 2 ** 53 - 1, -(2 ** 32), 2 ** 32));
const uint64 = fc.oneof(fc.maxSafeNat(), fc.integer({ min: 0, max: 1000 }), fc.constant(2 ** 53 - 1));
const float32 = fc.float({ noDefaultInfinity: false, noNaN: true });
const double = fc.double({ noNaN: true });

/** Strings that survive a round trip (no lone surrogates). */
export const text = fc.string({ unit: "grapheme", maxLength: 20 });

export const point: fc.Arbitrary<Point> = fc.record({ x: int32, y: int32 }, { requiredKeys: [] });

/**
 * Random Samples: any field may be absent, default or set, so the
 * "leave defaults out" rule is exercised as much as the encodings.
 */
export function sample(strings: fc.Arbitrary<string> = text): fc.Arbitrary<Sample> {
  return fc.record(
    {
      i32: int32,
      i64: int64,
      u32: uint32,
      u64: uint64,
      s32: int32,
      s64: int64,
      f32: uint32,
      f64: uint64,
      sf32: int32,
      sf64: int64,
      fl: float32,
      db: double,
      flag: fc.boolean(),
      text: strings,
      blob: fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)),
      color: fc.integer({ min: 0, max: 3 }),
      point,
      numbers: fc.array(int32, { maxLength: 6 }),
      deltas: fc.array(int64, { maxLength: 6 }),
      readings: fc.array(double, { maxLength: 4 }),
      tags: fc.array(strings, { maxLength: 4 }),
      path: fc.array(point, { maxLength: 3 }),
      labels: fc.dictionary(strings, strings, { maxKeys: 3 }),
      id: int64,
    },
    { requiredKeys: [] },
  );
}
