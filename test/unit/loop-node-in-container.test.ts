// A container's /dev is a copy made when it starts: loop devices the kernel
// creates later have no node there. attachLoop makes the node it needs.
// Run for real in a private mount namespace whose /dev is an empty tmpfs.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const LOOP = path.resolve(__dirname, "../../src/mount/loop.js");

describe("loop devices where /dev lacks their nodes", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-loopdev-"));
    writeFileSync(path.join(dir, "image"), "");
    truncateSync(path.join(dir, "image"), 8 * 1024 * 1024);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("attachLoop makes /dev/loopN and attaches the image", () => {
    const script = path.join(dir, "attach.js");
    writeFileSync(
      script,
      `const fs = require("fs");
       const { attachLoop } = require(${JSON.stringify(LOOP)});
       const before = fs.readdirSync("/dev");
       attachLoop(${JSON.stringify(path.join(dir, "image"))}, { readOnly: true }).then(({ loop, fd }) => {
         const node = fs.statSync(loop.path);
         console.log(JSON.stringify({ before, path: loop.path, block: node.isBlockDevice(), size: fs.readFileSync("/sys/block/loop" + loop.number + "/size", "utf8").trim() }));
         fs.closeSync(fd);
       });`,
    );
    // A fresh /dev holding only loop-control, as a container's might.
    const shell = `mount -t tmpfs tmpfs /dev && mknod /dev/loop-control c 10 237 && exec ${JSON.stringify(process.execPath)} ${JSON.stringify(script)}`;
    const out = JSON.parse(execFileSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", shell], { encoding: "utf8" })) as {
      before: string[];
      path: string;
      block: boolean;
      size: string;
    };
    assert.deepEqual(out.before, ["loop-control"], "the namespace's /dev starts without loop nodes");
    assert.match(out.path, /^\/dev\/loop\d+$/);
    assert.equal(out.block, true, "the node made is a block device");
    assert.equal(out.size, String((8 * 1024 * 1024) / 512), "and it is the image attached");
  });
});
