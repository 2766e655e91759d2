/**
 * Matmul benchmark: reef's variants, the naive baseline and peer engines on the same adapter, timed
 * the same way — wall time per call from host arrays to a host array (upload of both operands,
 * the multiply, readback of the result). Each result is spot-checked against float64 products.
 */
import type { Runtime } from '../src/gpu/runtime.js';
import { type MatmulVariant } from '../src/ops/matmul.js';
import type { DType } from '../src/tensor/tensor.js';
export interface MatmulShape {
    label: string;
    M: number;
    K: number;
    N: number;
}
export declare const SQUARE_SIZES: number[];
/** GEMMs of one coralbay-b training step (fs = 48, 96³ global crops). */
export declare const CORALBAY_SHAPES: MatmulShape[];
export interface Engine {
    name: string;
    kind: 'reef' | 'baseline' | 'peer' | 'reference';
    dtype: DType;
    run(a: Float32Array, b: Float32Array, s: MatmulShape): Promise<Float32Array>;
    /** reef engines: GPU time of the matmul kernel per call from timestamp queries, if available. */
    kernelMs?: () => Promise<number | null>;
    peakBytes?: () => number;
}
export interface MatmulRow {
    shape: string;
    engine: string;
    kind: Engine['kind'];
    dtype: DType;
    medianMs: number;
    gflops: number;
    kernelGflops: number | null;
    pctPeak: number;
    vsNaive: number | null;
    vsBestPeer: number | null;
    maxRelErr: number;
    ok: boolean;
    reps: number;
    peakMiB: number | null;
}
export declare function reefEngine(rt: Runtime, variant: MatmulVariant, dtype: DType, consts?: Record<string, number>): Engine;
export interface MatmulBenchOptions {
    peakGflops: number;
    budgetMs: number;
    onRow?: (row: MatmulRow) => void;
    beforeEngine?: () => Promise<void>;
}
export declare function benchShape(s: MatmulShape, engines: Engine[], opts: MatmulBenchOptions): Promise<MatmulRow[]>;
export declare function squareShape(n: number): MatmulShape;
