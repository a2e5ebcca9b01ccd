// Root hooks for the whole suite (.mocharc.json "require"). After a failed test, the last lines its drivers
// logged (test/sanity/driver-logs.ts): a failure seen only in CI can then be read, not guessed at.
import type { Context } from "mocha";
import { recentDriverLogs } from "./sanity/driver-logs";

export const mochaHooks = {
  afterEach(this: Context): void {
    if (this.currentTest?.state !== "failed") return;
    const logs = recentDriverLogs();
    if (logs) process.stderr.write(`\n${logs}`);
  },
};
