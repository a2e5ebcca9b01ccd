/**
 * A memory volume's size: a whole number of pages.
 *
 * The kernel keeps a tmpfs's `size=` in pages and rounds a size that is
 * not a whole number of them up: `size=10000` gives a tmpfs of 12,288
 * bytes. A volume given a size as asked would then hold more than
 * limit_bytes allows, and more than its record and the reply say. So the
 * driver picks a whole number of pages itself, inside the range, and that
 * is the size the tmpfs gets, the record keeps and the reply reports:
 * the size wanted rounded up, or where that passes limit_bytes the
 * largest whole page within it (limit_bytes 10,000 is 8,192). A range
 * that holds no whole page (required_bytes 5,000, limit_bytes 6,000) is
 * OUT_OF_RANGE. A tmpfs of size 0 would have no limit at all: never one.
 *
 * Pages are counted as 4 KiB, x86-64's size and that of the machines this
 * was run on; a kernel built with larger pages (some arm64 and ppc64
 * builds use 64 KiB) would still round its tmpfs up past the size chosen.
 */
import { outOfRange } from "../../csi/errors";
import { fits, type Range } from "../../controller/capacity";

export const PAGE_BYTES = 4096;

/** The size, in whole pages and inside `range`, for `wanted` bytes (at least `least`); OUT_OF_RANGE if none fits. */
export function inWholePages(wanted: number, range: Range, least = range.required): number {
  const rounded = Math.ceil(wanted / PAGE_BYTES) * PAGE_BYTES;
  const size = range.limit > 0 && rounded > range.limit ? Math.floor(range.limit / PAGE_BYTES) * PAGE_BYTES : rounded;
  if (size < Math.max(PAGE_BYTES, least) || !fits(size, range)) {
    throw outOfRange(
      `memory volumes come in whole pages of ${PAGE_BYTES} bytes (the kernel rounds a tmpfs's size up to one); ` +
        `none of at least ${Math.max(PAGE_BYTES, least)} bytes lies in the requested range [${range.required}, ${range.limit || "no limit"}]`,
    );
  }
  return size;
}
