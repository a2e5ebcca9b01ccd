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
 * Builds before this rule recorded the bytes asked for, and their tmpfs got
 * what the kernel made of them. Such a record is read as that, its size
 * rounded up to a whole page (roundedByTheKernel), without rewriting it: the
 * record, the replies and the RAM promised then agree with the tmpfs, and
 * with one the driver mounts from the record again after a reboot.
 *
 * A page is what the running kernel says (sysconf(_SC_PAGESIZE)): 4 KiB on
 * x86-64, 64 KiB on some arm64 and ppc64 kernels. A controller running
 * apart from the nodes answers the resizer with its own kernel's page,
 * which in a cluster of one architecture is the nodes'.
 */
import { libc } from "../../mount/libc";
import { outOfRange } from "../../csi/errors";
import { fits, type Range } from "../../controller/capacity";

/** sysconf's name for the page size, the same on every Linux architecture. */
const _SC_PAGESIZE = 30;
const sysconf = libc.func("long sysconf(int name)") as (name: number) => number;

export const PAGE_BYTES = pageSize();

function pageSize(): number {
  const n = Number(sysconf(_SC_PAGESIZE));
  return n > 0 && (n & (n - 1)) === 0 ? n : 4096; // a power of two, or the usual size
}

/** The size a tmpfs mounted with `size=bytes` has: `bytes` rounded up to a whole page, as the kernel rounds it. */
export function roundedByTheKernel(bytes: number): number {
  return Math.ceil(bytes / PAGE_BYTES) * PAGE_BYTES;
}

/** The size, in whole pages and inside `range`, for `wanted` bytes (at least `least`); OUT_OF_RANGE if none fits. */
export function inWholePages(wanted: number, range: Range, least = range.required): number {
  const rounded = roundedByTheKernel(wanted);
  const size = range.limit > 0 && rounded > range.limit ? Math.floor(range.limit / PAGE_BYTES) * PAGE_BYTES : rounded;
  if (size < Math.max(PAGE_BYTES, least) || !fits(size, range)) {
    throw outOfRange(
      `memory volumes come in whole pages of ${PAGE_BYTES} bytes (the kernel rounds a tmpfs's size up to one); ` +
        `none of at least ${Math.max(PAGE_BYTES, least)} bytes lies in the requested range [${range.required}, ${range.limit || "no limit"}]`,
    );
  }
  return size;
}
