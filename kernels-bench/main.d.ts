import type { Runtime } from '../src/gpu/runtime.js';
import { type MatmulVariant } from '../src/ops/matmul.js';
import { type MatmulRow } from './matmul.js';
export interface BenchOptions {
    root: string;
    sizes?: number[];
    coralbay?: boolean;
    peers?: string[];
    variants?: MatmulVariant[];
    f16?: boolean;
    /** Largest square size the naive kernel runs at (it is slow). */
    naiveMax?: number;
    budgetMs?: number;
    out?: string;
    /** Sweep each variant's tile configurations instead of comparing engines. */
    sweep?: boolean;
    log?: (line: string) => void;
}
export declare function runBench(rt: Runtime, o: BenchOptions): Promise<{
    rows: MatmulRow[];
    markdown: string;
}>;
