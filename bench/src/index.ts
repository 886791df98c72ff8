/**
 * `npm run bench`: runs every benchmark and prints one report. Ratios are measured in the same run
 * (op vs a Buffer.copy baseline of the same size), with medians and 5th/95th percentiles.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ALLOC_NODE_FLAGS } from './alloc.js';
import { runWireBench } from './wire.bench.js';
import { runVerbsBench } from './verbs.bench.js';
import { runEngineBench } from './engine.bench.js';
import { runIbverbsBench } from './ibverbs.js';

function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ')} |`;
  return [line(head), `|${w.map((x, i) => (i === 0 ? `:${'-'.repeat(x + 1)}` : `${'-'.repeat(x + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  console.log(`# smc-r benchmarks\n\nnode ${process.version}, ${process.arch}\n\n## wire codecs\n`);
  const rows = await runWireBench();
  console.log(table(
    ['op', 'ops/s', 'median ns', 'p5 ns', 'p95 ns', '±%', 'vs 44 B copy'],
    rows.map((r) => [r.name, fmt(r.opsPerSec, 0), fmt(r.medianNs), fmt(r.p5Ns), fmt(r.p95Ns), fmt(r.rmePct, 2), `${fmt(r.vsCopy, 2)}x`]),
  ));
  const check = fileURLToPath(new URL('./alloc-check.js', import.meta.url));
  const perOp = JSON.parse(execFileSync(process.execPath, [...ALLOC_NODE_FLAGS, check], { encoding: 'utf8' })) as Record<string, number>;
  console.log('\n## bytes allocated per op (young generation, exact when no scavenge ran)\n');
  console.log(table(['op', 'bytes/op'], Object.entries(perOp).map(([k, v]) => [k, fmt(v, 2)])));
  await runVerbsBench();
  await runIbverbsBench();
  await runEngineBench();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
