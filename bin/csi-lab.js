#!/usr/bin/env node
// The installed entry point. The TypeScript is compiled to dist/ by `npm ci`
// (the "prepare" script), so this file only hands over to it.
//
// No V8 flags here: any V8 flag on node's command line makes Node compile
// its own modules from source instead of from their shipped code cache,
// 20–25 ms of start-up. What a flag did before (a small young generation)
// the driver sets at run time, first thing (src/server/young-generation.ts).
"use strict";
// File system calls run on libuv's thread pool (4 threads by default). A
// driver's calls are mostly metadata operations and fsyncs that wait on the
// disk, so more threads let more of them wait at once. It must be set before
// the pool first starts.
process.env.UV_THREADPOOL_SIZE = process.env.UV_THREADPOOL_SIZE || "16";
if (process.argv[2] === "driver") require("../dist/src/server/young-generation.js").holdYoungGeneration();
require("../dist/src/cli.js").main(process.argv.slice(2));
