/**
 * Matmul benchmark: reef's variants, the naive baseline and peer engines on the same adapter, timed
 * the same way — wall time per call from host arrays to a host array (upload of both operands,
 * the multiply, readback of the result). Each result is spot-checked against float64 products.
 */
import type { Runtime } from '../src/gpu/runtime.js';
import { matmul, type MatmulVariant } from '../src/ops/matmul.js';
import { tensor } from '../src/tensor/create.js';
import type { DType } from '../src/tensor/tensor.js';
import { median } from './timing.js';

export interface MatmulShape {
  label: string;
  M: number;
  K: number;
  N: number;
}

export const SQUARE_SIZES = [256, 512, 1024, 2048];

/** GEMMs of one coralbay-b training step (fs = 48, 96³ global crops). */
export const CORALBAY_SHAPES: MatmulShape[] = [
  { label: 'coralbay-b stage-1 qkv', M: 117649, K: 48, N: 144 },
  { label: 'coralbay-b stage-2 MLP up', M: 14706, K: 96, N: 384 },
];

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

export function reefEngine(rt: Runtime, variant: MatmulVariant, dtype: DType, consts?: Record<string, number>): Engine {
  const label = consts ? `${variant}${JSON.stringify(consts).replace(/[{}"]/g, '')}` : variant;
  return {
    name: `reef ${label}${dtype === 'f16' ? ' f16' : ''}`,
    kind: variant === 'naive' ? 'baseline' : 'reef',
    dtype,
    async run(a, b, s) {
      const ta = tensor(rt, a, [s.M, s.K], { dtype });
      const tb = tensor(rt, b, [s.K, s.N], { dtype });
      const tc = matmul(ta, tb, { variant, consts });
      const out = await tc.read();
      ta.dispose();
      tb.dispose();
      tc.dispose();
      return out;
    },
    async kernelMs() {
      const rows = await rt.profile();
      const row = rows.find((r) => r.kernel.startsWith('matmul_'));
      return row && row.meanUs !== null ? row.meanUs / 1000 : null;
    },
    peakBytes: () => rt.memory().peak,
  };
}

function randomMatrix(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

/** Max relative error of 64 sampled entries against float64 dot products. */
function spotCheck(c: Float32Array, a: Float32Array, b: Float32Array, s: MatmulShape): number {
  let maxErr = 0;
  let maxRef = 0;
  for (let t = 0; t < 64; t++) {
    const i = Math.floor(((t * 2654435761) % 4294967296) / 4294967296 * s.M);
    const j = Math.floor(((t * 40503 + 17) % 65536) / 65536 * s.N);
    let ref = 0;
    for (let k = 0; k < s.K; k++) ref += a[i * s.K + k]! * b[k * s.N + j]!;
    maxErr = Math.max(maxErr, Math.abs(c[i * s.N + j]! - ref));
    maxRef = Math.max(maxRef, Math.abs(ref));
  }
  return c.length === s.M * s.N ? maxErr / Math.max(maxRef, 1e-30) : Infinity;
}

export interface MatmulBenchOptions {
  peakGflops: number;
  budgetMs: number;
  onRow?: (row: MatmulRow) => void;
  beforeEngine?: () => Promise<void>;
}

/**
 * Times every engine on one shape. Repeats are interleaved round-robin (engine 1, 2, …, 1, 2, …) so
 * drift in the machine's speed (shared hosts, thermal) affects every engine alike and the ratios
 * stay fair; each engine gets one untimed warm-up call first.
 */
export async function benchShape(s: MatmulShape, engines: Engine[], opts: MatmulBenchOptions): Promise<MatmulRow[]> {
  const a = randomMatrix(s.M * s.K, 1);
  const b = randomMatrix(s.K * s.N, 2);
  const flops = 2 * s.M * s.N * s.K;
  const errs: number[] = [];
  for (const e of engines) errs.push(spotCheck(await e.run(a, b, s), a, b, s));
  const times: number[][] = engines.map(() => []);
  const kernelMs: (number | null)[][] = engines.map(() => []);
  const peaks: number[] = engines.map(() => 0);
  const start = performance.now();
  for (let rep = 0; rep < 15; rep++) {
    if (rep >= 3 && performance.now() - start > opts.budgetMs) break;
    for (const [i, e] of engines.entries()) {
      await opts.beforeEngine?.();
      const t0 = performance.now();
      await e.run(a, b, s);
      times[i]!.push(performance.now() - t0);
      if (e.kernelMs) kernelMs[i]!.push(await e.kernelMs());
      if (e.peakBytes) peaks[i] = Math.max(peaks[i]!, e.peakBytes());
    }
  }
  const rows = engines.map((e, i): MatmulRow => {
    const ms = median(times[i]!);
    const kms = kernelMs[i]!.filter((x): x is number => x !== null);
    const row: MatmulRow = {
      shape: s.label,
      engine: e.name,
      kind: e.kind,
      dtype: e.dtype,
      medianMs: ms,
      gflops: flops / ms / 1e6,
      kernelGflops: kms.length ? flops / median(kms) / 1e6 : null,
      pctPeak: (100 * flops) / ms / 1e6 / opts.peakGflops,
      vsNaive: null,
      vsBestPeer: null,
      maxRelErr: errs[i]!,
      ok: errs[i]! <= (e.dtype === 'f16' ? 2e-2 : 1e-3),
      reps: times[i]!.length,
      peakMiB: e.peakBytes ? peaks[i]! / 2 ** 20 : null,
    };
    opts.onRow?.(row);
    return row;
  });
  const naive = rows.find((r) => r.kind === 'baseline');
  for (const r of rows) {
    if (naive) r.vsNaive = r.gflops / naive.gflops;
    const peers = rows.filter((p) => p.kind === 'peer' && p.dtype === r.dtype && p.ok);
    const best = Math.max(0, ...peers.map((p) => p.gflops));
    if (best > 0) r.vsBestPeer = r.gflops / best;
  }
  return rows;
}

export function squareShape(n: number): MatmulShape {
  return { label: `${n}²`, M: n, K: n, N: n };
}
