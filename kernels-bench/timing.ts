/** Timing helpers: every engine is timed the same way, wall time per call, medians over repeats. */

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface TimingOptions {
  /** Untimed calls first (pipeline compilation, per-shape setup). */
  warmup?: number;
  minReps?: number;
  maxReps?: number;
  /** Stop adding repeats once this much time was spent (after minReps). */
  budgetMs?: number;
}

/** Calls `fn` repeatedly and returns the per-call wall times in ms. */
export async function timeCalls(fn: () => Promise<unknown>, opts: TimingOptions = {}): Promise<number[]> {
  const { warmup = 1, minReps = 3, maxReps = 15, budgetMs = 3000 } = opts;
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxReps && (times.length < minReps || performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times;
}
