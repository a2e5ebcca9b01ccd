/**
 * A log of a driver's looks at loop devices, for the tests: preloaded into a driver
 * (NODE_OPTIONS="--require <this file>"), it appends to the file CSI_LAB_LOOP_LOG each
 * /dev/loopN the driver opens and each /sys/block/loopN… it reads or lists, one path a line,
 * before the call. Everything else is the real driver; this only shows which devices a call
 * looked at, which no reply says.
 */
// The module object itself (an `import * as` copy is read-only), whose functions the driver's modules call.
const fs = require("node:fs") as typeof import("node:fs");

const log = process.env.CSI_LAB_LOOP_LOG;
if (log) {
  const look = /^\/(dev\/loop\d+$|sys\/block\/loop\d+(\/|$))/;
  // The driver's modules call their imports through the module object, so replacing its functions reaches every caller.
  for (const name of ["openSync", "readdirSync", "readFileSync"] as const) {
    const original = fs[name] as (...args: unknown[]) => unknown;
    (fs as unknown as Record<string, unknown>)[name] = function (this: unknown, ...args: unknown[]) {
      if (typeof args[0] === "string" && look.test(args[0])) fs.appendFileSync(log, `${args[0]}\n`);
      return original.apply(this, args);
    };
  }
}

/** The environment that preloads this log into a driver, writing to `file`. */
export function loopLookEnv(file: string): NodeJS.ProcessEnv {
  const preload = `--require ${__filename}`;
  return { ...process.env, NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" "), CSI_LAB_LOOP_LOG: file };
}
