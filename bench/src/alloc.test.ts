import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ALLOC_NODE_FLAGS } from './alloc.js';

const probe = fileURLToPath(new URL('./alloc-probe.ts', import.meta.url));

describe('bench: allocation probe', () => {
  it('sees zero bytes for a store into a Buffer and > 0 bytes for an object literal', () => {
    const out = execFileSync(process.execPath, [...ALLOC_NODE_FLAGS, '--import', 'tsx', probe], { encoding: 'utf8' });
    const { none, some } = JSON.parse(out) as { none: number; some: number };
    assert.ok(none < 0.5, `buffer store allocated ${none} B/op`);
    assert.ok(some >= 8, `object literal allocated only ${some} B/op: the probe cannot see allocations`);
  });
});
