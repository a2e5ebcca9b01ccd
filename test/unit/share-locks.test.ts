// Share locks (share-locks.ts) whose files go with their objects: processes racing to take one name's lock — exclusive
// or shared — and to remove its file when done, round after round, never hold it in excluding modes at once.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LOCKS_DIR, lockKey, unlockKey } from "../../src/backends/nfs/share-locks";

const KEY = "0123456789abcdef0123456789abcdef";
const WORKERS = 4;
const ROUNDS = 3000;

/**
 * One racer, a process of its own: each round it takes the lock, exclusive (or, one round in four, shared), checks
 * that nobody holds it against it — an exclusive holder's pid is in `owner`, a shared holder's file in `readers` —
 * for a moment, and lets it go, removing the file (as a delete does) every other exclusive round. Prints what it saw.
 */
const WORKER = `
const fs = require("node:fs");
const path = require("node:path");
const { lockKey, unlockKey } = require(process.argv[1]);
const [root, key, rounds] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const owner = path.join(root, "owner");
const readers = path.join(root, "readers");
const me = String(process.pid);
const seen = { held: 0, shared: 0, removed: 0, busy: 0, violations: [] };
const check = (ok, what) => { if (!ok) seen.violations.push(what); };
const spin = () => { for (let i = Math.floor(Math.random() * 2000); i > 0; i--); };
for (let r = 0; r < rounds; r++) {
  const shared = r % 4 === 3;
  try {
    lockKey(root, key, shared);
  } catch (err) {
    if (err.code !== "EWOULDBLOCK") throw err;
    seen.busy++;
    continue;
  }
  if (shared) {
    seen.shared++;
    check(fs.readFileSync(owner, "utf8") === "", "a shared holder found an exclusive one: " + fs.readFileSync(owner, "utf8"));
    fs.writeFileSync(path.join(readers, me), "");
    spin();
    check(fs.readFileSync(owner, "utf8") === "", "an exclusive holder came in beside a shared one");
    fs.unlinkSync(path.join(readers, me));
    unlockKey(root, key, true); // asked to remove under a shared lock: it must not
  } else {
    seen.held++;
    const before = fs.readFileSync(owner, "utf8");
    check(before === "", "an exclusive holder found another: " + before);
    check(fs.readdirSync(readers).length === 0, "an exclusive holder found shared ones: " + fs.readdirSync(readers));
    fs.writeFileSync(owner, me);
    spin();
    const after = fs.readFileSync(owner, "utf8");
    check(after === me, "another wrote over an exclusive holder: " + after);
    check(fs.readdirSync(readers).length === 0, "shared holders came in beside an exclusive one: " + fs.readdirSync(readers));
    fs.writeFileSync(owner, "");
    if (unlockKey(root, key, r % 2 === 0)) seen.removed++;
  }
}
process.stdout.write(JSON.stringify(seen));
`;

type Seen = { held: number; shared: number; removed: number; busy: number; violations: string[] };

function race(root: string): Promise<Seen> {
  const locks = require.resolve("../../src/backends/nfs/share-locks");
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ["-e", WORKER, locks, root, KEY, String(ROUNDS)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (b: Buffer) => (out += b));
    p.stderr.on("data", (b: Buffer) => (err += b));
    p.on("error", reject);
    p.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as Seen) : reject(new Error(`a racer exited with ${code}: ${err}`))));
  });
}

describe("share locks whose files are removed when their object is gone", function () {
  this.timeout(300_000);
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), "share-locks-"));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("the holder of the lock, exclusive, removes its file; shared, it does not; and the name's next lock makes it again", () => {
    const file = path.join(root, LOCKS_DIR, KEY);
    lockKey(root, KEY, true);
    assert.equal(unlockKey(root, KEY, true), false, "removed under a shared lock");
    assert.deepEqual(readdirSync(path.dirname(file)), [KEY]);
    lockKey(root, KEY);
    assert.equal(unlockKey(root, KEY, true), true);
    assert.deepEqual(readdirSync(path.dirname(file)), []);
    lockKey(root, KEY);
    assert.deepEqual(readdirSync(path.dirname(file)), [KEY]);
    unlockKey(root, KEY);
    assert.deepEqual(readdirSync(path.dirname(file)), [KEY], "kept when not asked to remove it");
  });

  it(`${WORKERS} processes taking one lock and removing its file, ${ROUNDS} rounds each, never hold it at once`, async () => {
    writeFileSync(path.join(root, "owner"), "");
    mkdirSync(path.join(root, "readers"));
    const seen = await Promise.all(Array.from({ length: WORKERS }, () => race(root)));
    assert.deepEqual(seen.flatMap((s) => s.violations).slice(0, 5), []);
    const total = (k: "held" | "shared" | "removed") => seen.reduce((n, s) => n + s[k], 0);
    assert.ok(total("held") > 0 && total("shared") > 0 && total("removed") > 0, JSON.stringify(seen));
    // The last exclusive holder may have kept it (an odd round); nothing else is left.
    assert.ok(readdirSync(path.join(root, LOCKS_DIR)).every((f) => f === KEY));
  });
});
