/** Timing helpers: every engine is timed the same way, wall time per call, medians over repeats. */
export declare function median(xs: readonly number[]): number;
export interface TimingOptions {
    /** Untimed calls first (pipeline compilation, per-shape setup). */
    warmup?: number;
    minReps?: number;
    maxReps?: number;
    /** Stop adding repeats once this much time was spent (after minReps). */
    budgetMs?: number;
}
/** Calls `fn` repeatedly and returns the per-call wall times in ms. */
export declare function timeCalls(fn: () => Promise<unknown>, opts?: TimingOptions): Promise<number[]>;
