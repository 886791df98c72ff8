#!/usr/bin/env node
// `npm run demo` after the bootstrap: until the SMC-R engine lands, the main job is to build a
// complete sample SMC-Rv2 connection capture and decode it with `smcr decode`, the way a user
// would inspect a real capture.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const smcr = join(root, 'packages', 'cli', 'bin', 'smcr.js');
const dir = mkdtempSync(join(tmpdir(), 'smcr-demo-'));
const pcap = join(dir, 'sample-smcr-v2.pcap');

function smcrRun(args) {
  console.log(`\n$ smcr ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [smcr, ...args], { stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`smcr ${args[0]} failed with exit ${r.status}`);
    process.exit(r.status ?? 1);
  }
}

try {
  smcrRun(['sample', pcap]);
  smcrRun(['decode', pcap]);
  console.log('\nThe same file can be opened with tshark or Wireshark; note that tshark 4.0 cannot decode the');
  console.log('SMC-Rv2 LLC messages (it reads their little-endian length big-endian), smcr decode can.');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
