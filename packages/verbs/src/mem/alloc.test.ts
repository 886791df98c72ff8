// The mem data path allocates nothing per operation in steady state: post_send, post_recv, the
// transport (MemProvider.step) and poll, measured with bench/src/alloc.ts in a child process
// started with ALLOC_NODE_FLAGS (a large fixed young generation, so no scavenge hides garbage).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const allocUrl = new URL('../../../../bench/src/alloc.ts', import.meta.url).href;
const opsUrl = new URL('./hot-ops.ts', import.meta.url).href;
const FLAGS = ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64'];

const probe = `
const { bytesPerOp, ALLOC_NODE_FLAGS } = await import(${JSON.stringify(allocUrl)});
const { memHotOps } = await import(${JSON.stringify(opsUrl)});
const h = await memHotOps();
const result = {};
// Warm up well past V8's tier-up thresholds first (compilation allocates feedback and code
// metadata, which is not the data path's garbage), then keep the best of three runs.
for (const fn of Object.values(h.ops)) for (let i = 0; i < 200000; i++) fn();
for (const [name, fn] of Object.entries(h.ops)) result[name] = Math.min(bytesPerOp(fn, 50000), bytesPerOp(fn, 50000), bytesPerOp(fn, 50000));
await h.close();
result.flags = ALLOC_NODE_FLAGS.join(' ');
process.stdout.write(JSON.stringify(result));
`;

describe('mem: the data path allocates nothing in steady state', () => {
  it('every hot op (post, transport, poll) stays under 1 byte per op', function () {
    this.timeout(60_000);
    const out = execFileSync(process.execPath, [...FLAGS, '--import', 'tsx', '--input-type=module', '-e', probe], {
      encoding: 'utf8',
      cwd: fileURLToPath(new URL('../../../..', import.meta.url)),
    });
    const perOp = JSON.parse(out) as Record<string, number | string>;
    assert.equal(perOp.flags, FLAGS.join(' '), 'the probe must run with bench ALLOC_NODE_FLAGS');
    const ops = Object.entries(perOp).filter(([k]) => k !== 'flags') as [string, number][];
    assert.ok(ops.length >= 6, `expected at least 6 hot ops, got ${ops.map(([k]) => k).join(', ')}`);
    for (const [name, bytes] of ops) assert.ok(bytes < 1, `${name} allocates ${bytes.toFixed(2)} B/op`);
    if (process.env.SMCR_SHOW_ALLOC) console.log(ops.map(([k, v]) => `  ${k}: ${v.toFixed(3)} B/op`).join('\n'));
  });
});
