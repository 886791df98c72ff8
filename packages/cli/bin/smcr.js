#!/usr/bin/env node
// The one smcr binary; all logic lives in the built package.
import { main } from '../dist/main.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`smcr: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
