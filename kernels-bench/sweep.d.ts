/**
 * `reef bench --sweep`: the tile configurations of each matmul variant side by side, so a kernel
 * change or a new adapter can be re-tuned by rerunning one command.
 */
import type { Runtime } from '../src/gpu/runtime.js';
import type { MatmulVariant } from '../src/ops/matmul.js';
import { type MatmulShape } from './matmul.js';
export declare const SWEEP_CONFIGS: Record<Exclude<MatmulVariant, 'naive'>, Record<string, number>[]>;
export declare function runSweep(rt: Runtime, shapes: MatmulShape[], variants: MatmulVariant[], peakGflops: number, budgetMs: number, log: (s: string) => void): Promise<void>;
