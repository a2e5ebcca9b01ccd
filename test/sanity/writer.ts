/**
 * A pod that keeps writing: run as its own process by the copy tests
 * (`node writer.js files DIR` or `node writer.js device DEVICE [prefix]`).
 *
 * In "files" mode it writes DIR/<prefix>w-0, w-1, … — each file opened,
 * written and closed, never synced — and prints each index once its
 * close() has returned, so every index the test has read before a call
 * names a file completed before that call. In "device" mode it writes 4 KiB
 * records at offsets 0, 4096, … of a block device the same way (buffered,
 * never synced). In "pairs" mode it writes DIRA/w-N and then DIRB/w-N, for
 * group snapshots: at any instant B holds the same files as A, or one fewer.
 * Contents are a function of the index, so a test can check any copy
 * without keeping what was written. It sleeps a little between writes so
 * a test's volumes do not fill up.
 */
import { closeSync, openSync, writeFileSync, writeSync } from "node:fs";
import * as path from "node:path";

export const RECORD = 4096;

/** The bytes of file `i` (1–16 KiB; no two alike). */
export function fileContent(i: number, prefix = ""): Buffer {
  const size = 1024 + ((i * 7919) % 15360);
  return fill(Buffer.alloc(size), `${prefix}${i}`);
}

/** The 4 KiB record `i` of a block device. */
export function recordContent(i: number): Buffer {
  return fill(Buffer.alloc(RECORD), `record ${i}`);
}

export function fileName(i: number): string {
  return `w-${i}`;
}

/** A cheap pseudo-random fill seeded by `seed` (a test needs only that copies are exact). */
function fill(buf: Buffer, seed: string): Buffer {
  let x = 2166136261;
  for (const c of Buffer.from(seed)) x = Math.imul(x ^ c, 16777619);
  for (let i = 0; i < buf.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}

const pause = new Int32Array(new SharedArrayBuffer(4));
const nap = () => Atomics.wait(pause, 0, 0, 2);

function main(argv: string[]): void {
  const [mode, target, second] = argv;
  if (mode === "files") {
    for (let i = 0; ; i++) {
      writeFileSync(path.join(target!, fileName(i)), fileContent(i));
      process.stdout.write(`${i}\n`);
      nap();
    }
  } else if (mode === "pairs") {
    for (let i = 0; ; i++) {
      writeFileSync(path.join(target!, fileName(i)), fileContent(i, "a"));
      writeFileSync(path.join(second!, fileName(i)), fileContent(i, "b"));
      process.stdout.write(`${i}\n`);
      nap();
    }
  } else if (mode === "device") {
    const fd = openSync(target!, "r+");
    try {
      for (let i = 0; ; i++) {
        try {
          writeSync(fd, recordContent(i), 0, RECORD, i * RECORD);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOSPC") return; // the end of the device
          throw err;
        }
        process.stdout.write(`${i}\n`);
        nap();
      }
    } finally {
      closeSync(fd);
    }
  } else {
    throw new Error(`usage: writer.js files DIR | pairs DIR_A DIR_B | device DEVICE`);
  }
}

if (require.main === module) main(process.argv.slice(2));
