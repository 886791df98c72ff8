/**
 * Allocation measurement for hot paths. V8 has no cumulative "bytes allocated" counter, so we read
 * the young generation's used size around a loop. That only works when no scavenge runs in
 * between, which the caller arranges by starting node with a large fixed semi-space
 * (`--min-semi-space-size=64 --max-semi-space-size=64`) and `--expose-gc`; a run in which the
 * young space shrank (a scavenge happened) is discarded and retried.
 */
import { getHeapSpaceStatistics } from 'node:v8';

/** Node flags under which {@link bytesPerOp} gives exact numbers. */
export const ALLOC_NODE_FLAGS = ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64'] as const;

function newSpaceUsed(): number {
  for (const s of getHeapSpaceStatistics()) if (s.space_name === 'new_space') return s.space_used_size;
  throw new Error('V8 reports no new_space');
}

/**
 * Average bytes the young generation grew per call of `fn`, over `iterations` calls (after a
 * warm-up so that lazy compilation and inline caches do not count). Throws when the process was
 * not started with {@link ALLOC_NODE_FLAGS}.
 */
export function bytesPerOp(fn: () => void, iterations = 100_000): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') throw new Error(`bytesPerOp needs node ${ALLOC_NODE_FLAGS.join(' ')}`);
  for (let i = 0; i < 10_000; i++) fn();
  for (let attempt = 0; attempt < 5; attempt++) {
    gc();
    const before = newSpaceUsed();
    for (let i = 0; i < iterations; i++) fn();
    const after = newSpaceUsed();
    if (after >= before) return (after - before) / iterations;
  }
  throw new Error('a scavenge ran during every attempt; raise the semi-space size or lower iterations');
}
