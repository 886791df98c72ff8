import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ALLOC_NODE_FLAGS } from './alloc.js';

const check = fileURLToPath(new URL('./alloc-check.ts', import.meta.url));

describe('bench: hot-path codecs allocate nothing', () => {
  it('CDC encode, CDC decodeInto and LLC encode stay under 1 byte per op', () => {
    const out = execFileSync(process.execPath, [...ALLOC_NODE_FLAGS, '--import', 'tsx', check], { encoding: 'utf8' });
    const perOp = JSON.parse(out) as Record<string, number>;
    assert.ok(Object.keys(perOp).length >= 3, `expected at least 3 hot ops, got ${Object.keys(perOp).join(', ')}`);
    for (const [name, bytes] of Object.entries(perOp)) assert.ok(bytes < 1, `${name} allocates ${bytes.toFixed(2)} B/op`);
  });
});
