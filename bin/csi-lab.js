#!/usr/bin/env -S node --max-semi-space-size=2
// The installed entry point. The TypeScript is compiled to dist/ by `npm ci`
// (the "prepare" script), so this file only hands over to it.
//
// --max-semi-space-size=2 (MB): V8's young generation, where a call's
// short-lived objects live, may otherwise grow to 16 MB per semi-space and
// stay that size. A driver's calls leave almost nothing behind (about 10 MB
// is live after a full GC), so a small young generation costs no measurable
// CPU here and keeps the resident size under load 20–40 MB lower
// (docs/performance.md). Run as `node bin/csi-lab.js`, pass the flag to node.
"use strict";
// File system calls run on libuv's thread pool (4 threads by default). A
// driver's calls are mostly metadata operations and fsyncs that wait on the
// disk, so more threads let more of them wait at once. It must be set before
// the pool first starts.
process.env.UV_THREADPOOL_SIZE = process.env.UV_THREADPOOL_SIZE || "16";
require("../dist/src/cli.js").main(process.argv.slice(2));
