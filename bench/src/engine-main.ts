/**
 * Runs only the engine benchmark: `node bench/dist/engine-main.js [--bulk-mib N] [--rounds N]
 * [--rtts N] [--blocks N] [--bulk-only | --rr-only]` (defaults as in engine.bench.ts). For profiling the data path
 * (`node --cpu-prof bench/dist/engine-main.js ...`) without the codec and verbs benchmarks.
 */
import { runEngineBench, type EngineBenchOptions } from './engine.bench.js';

function arg(name: string): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`--${name} needs a positive number`);
  return v;
}

if (process.argv.includes('--help')) {
  console.log('usage: node bench/dist/engine-main.js [--bulk-mib N] [--rounds N] [--rtts N] [--blocks N] [--bulk-only | --rr-only]');
} else {
  const mib = arg('bulk-mib');
  const opts: EngineBenchOptions = {
    ...(mib !== undefined ? { bulkBytes: mib * 1024 * 1024 } : {}),
    ...(arg('rounds') !== undefined ? { rounds: arg('rounds') } : {}),
    ...(arg('rtts') !== undefined ? { rtts: arg('rtts') } : {}),
    ...(arg('blocks') !== undefined ? { rttBlocks: arg('blocks') } : {}),
    ...(process.argv.includes('--bulk-only') ? { only: 'bulk' as const } : process.argv.includes('--rr-only') ? { only: 'rr' as const } : {}),
  };
  runEngineBench(opts).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
