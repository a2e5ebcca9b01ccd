#!/usr/bin/env node
// The installed entry point. The TypeScript is compiled to dist/ by `npm ci`
// (the "prepare" script), so this file only hands over to it.
"use strict";
require("../dist/src/cli.js").main(process.argv.slice(2));
