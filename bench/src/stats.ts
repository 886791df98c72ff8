/** Order statistics over benchmark samples (seconds per op), reported in nanoseconds. */
export interface Summary {
  medianNs: number;
  p5Ns: number;
  p95Ns: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function summarize(samplesSec: readonly number[]): Summary {
  const s = [...samplesSec].sort((a, b) => a - b);
  return { medianNs: quantile(s, 0.5) * 1e9, p5Ns: quantile(s, 0.05) * 1e9, p95Ns: quantile(s, 0.95) * 1e9 };
}
