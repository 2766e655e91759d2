/**
 * Matrix multiply: batched, either operand transposed, optional fused bias.
 *
 *   a: [...batch, M, K] ([..., K, M] with transA)   b: [...batch, K, N] ([..., N, K] with transB), or 2-D
 *   out: [...batch, M, N] = op(a) · op(b) + bias[N]
 *
 * Three kernels: `tiled` (workgroup-memory tiles + register blocks, for GPUs), `regblock` (register
 * blocks with no workgroup memory or barriers, for CPU adapters) and `naive` (the baseline). The
 * variant is chosen from the adapter and shape, or forced with REEF_MATMUL / the `variant` option.
 * Within regblock, outputs of few columns and many rows (a small Swin's Linear layers) take
 * matmul_rows_sg.wgsl where the adapter has fixed-size subgroups.
 */
import naiveCode from '../../shaders/matmul_naive.wgsl';
import regblockCode from '../../shaders/matmul_regblock.wgsl';
import regblockVec4Code from '../../shaders/matmul_regblock_vec4.wgsl';
import tiledCode from '../../shaders/matmul_tiled.wgsl';
import rowsSgCode from '../../shaders/matmul_rows_sg.wgsl';
import type { KernelKey, ShaderFile } from '../gpu/kernel.js';
import type { BufferSlice, Runtime } from '../gpu/runtime.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { noGrad } from '../tensor/grad-mode.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { alignedCount, bindRange, lcm } from './binding-range.js';
import { sameShape } from './geometry.js';
import { rowsSubgroupSize } from './conv3d.js';
import { sum } from './reduce.js';
import { accumulate } from './pointwise.js';
import { reshape } from './shape.js';

export const MATMUL_SHADERS = {
  naive: { name: 'matmul_naive', code: naiveCode },
  regblock: { name: 'matmul_regblock', code: regblockCode },
  regblock_vec4: { name: 'matmul_regblock_vec4', code: regblockVec4Code },
  tiled: { name: 'matmul_tiled', code: tiledCode },
  rows_sg: { name: 'matmul_rows_sg', code: rowsSgCode },
} satisfies Record<string, ShaderFile>;

export const MATMUL_VARIANTS = ['naive', 'regblock', 'tiled'] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
  variant?: MatmulVariant;
  /** Tile constants replacing the plan's (for benchmark sweeps of a variant's configurations). */
  consts?: Record<string, number>;
}

/** Tile configuration of a variant, chosen from the problem's shape. */
export interface MatmulPlan {
  variant: MatmulVariant;
  shader: keyof typeof MATMUL_SHADERS;
  consts: Record<string, number>;
  /** Output rows and columns covered by one workgroup. */
  tileM: number;
  tileN: number;
  /** Row tiles run along the grid's x (consecutive workgroups share a panel of B), else columns do. */
  rowsInX: boolean;
}

/** Problem facts the plan depends on besides the output size. */
export interface MatmulLayout {
  transB: boolean;
}

export function planMatmul(rt: Runtime, M: number, N: number, layout: MatmulLayout, variant?: MatmulVariant, consts?: Record<string, number>): MatmulPlan {
  const forced = (rt.host.env('REEF_MATMUL') as MatmulVariant | undefined) || undefined;
  const v = variant ?? forced ?? (rt.caps.isCpu ? 'regblock' : 'tiled');
  if (!MATMUL_VARIANTS.includes(v)) throw new ReefError(`unknown matmul variant '${v}' (have ${MATMUL_VARIANTS.join(', ')})`);
  const plan = defaultPlan(v, M, N, layout, rowsSubgroupSize(rt));
  return consts ? withConsts(plan, consts) : plan;
}

function tileOf(shader: MatmulPlan['shader'], c: Record<string, number>): Pick<MatmulPlan, 'tileM' | 'tileN' | 'rowsInX'> {
  switch (shader) {
    case 'naive':
      return { tileM: 16, tileN: 16, rowsInX: false };
    case 'regblock':
      return { tileM: c.TM!, tileN: c.WG! * c.TN!, rowsInX: true };
    case 'regblock_vec4':
      return { tileM: c.TM!, tileN: 4 * c.WG! * c.TN!, rowsInX: true };
    case 'tiled':
      return { tileM: c.BM!, tileN: c.BN!, rowsInX: false };
    case 'rows_sg':
      return { tileM: c.TR! * c.WG!, tileN: 12, rowsInX: true };
  }
}

/** rows_sg: at most this many columns (groups of 12), and at least this many rows (lanes to fill the cores). */
const ROWS_SG_MAX_N = 48;
const ROWS_SG_MIN_M = 1024;

function withConsts(plan: MatmulPlan, consts: Record<string, number>): MatmulPlan {
  const c = { ...plan.consts, ...consts };
  return { ...plan, consts: c, ...tileOf(plan.shader, c) };
}

/**
 * Column tile of the vec4 regblock kernel: the widest of 128, 64 or 32 columns whose padding of N
 * is within 5 % of the least padding, since padded columns are computed and thrown away
 * (N = 144 takes 32-column tiles: 11 % padding instead of 78 %).
 */
function vec4ColumnTile(N: number): { WG: number; TN: number } {
  const options = [
    { WG: 16, TN: 2 },
    { WG: 8, TN: 2 },
    { WG: 8, TN: 1 },
  ];
  const waste = (o: { WG: number; TN: number }) => {
    const w = 4 * o.WG * o.TN;
    return (Math.ceil(N / w) * w - N) / N;
  };
  const least = Math.min(...options.map(waste));
  return options.find((o) => waste(o) <= least + 0.05)!;
}

function defaultPlan(v: MatmulVariant, M: number, N: number, layout: MatmulLayout, subgroup: number): MatmulPlan {
  let shader: MatmulPlan['shader'];
  let consts: Record<string, number>;
  switch (v) {
    case 'naive':
      shader = 'naive';
      consts = {};
      break;
    case 'regblock':
      // Few columns, many rows: lanes along the rows (rows_sg); else whole vec4 rows of B and C
      // take the vec4 kernel, anything else the scalar one.
      if (subgroup > 0 && N <= ROWS_SG_MAX_N && M >= ROWS_SG_MIN_M) {
        shader = 'rows_sg';
        consts = { TR: 4, WG: 64, SG: subgroup };
      } else if (!layout.transB && N % 4 === 0) {
        shader = 'regblock_vec4';
        consts = { TM: 6, ...vec4ColumnTile(N) };
      } else {
        shader = 'regblock';
        consts = { TM: 8, TN: 4, WG: 16 };
      }
      break;
    case 'tiled':
      shader = 'tiled';
      consts = M >= 512 && N >= 512 ? { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 } : { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
      break;
  }
  return { variant: v, shader, consts, ...tileOf(shader, consts) };
}

interface Geometry {
  batch: number;
  M: number;
  N: number;
  K: number;
  outShape: number[];
  strideA: number;
  strideB: number;
}

function geometry(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Geometry {
  const fail = (why: string): never => {
    throw new ReefError(`matmul${transA ? ' (a transposed)' : ''}${transB ? ' (b transposed)' : ''}: ${a.describe()} · ${b.describe()}: ${why}`);
  };
  if (a.ndim < 2 || b.ndim < 2) fail('both operands need at least 2 dimensions');
  if (a.dtype !== b.dtype) fail('element types differ');
  const [ar, ac] = a.shape.slice(-2) as [number, number];
  const [br, bc] = b.shape.slice(-2) as [number, number];
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const Kb = transB ? bc : br;
  const N = transB ? br : bc;
  if (K !== Kb) fail(`inner dimensions ${K} and ${Kb} differ`);
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  let batchShape: readonly number[];
  if (batchB.length === 0) batchShape = batchA;
  else if (batchA.length === 0) batchShape = batchB;
  else if (sameShape(batchA, batchB)) batchShape = batchA;
  else return fail('batch dimensions differ (one operand may be 2-D, else they must match)');
  const batch = batchShape.reduce((p, d) => p * d, 1);
  return {
    batch,
    M,
    N,
    K,
    outShape: [...batchShape, M, N],
    strideA: batchA.length ? M * K : 0,
    strideB: batchB.length ? K * N : 0,
  };
}

/** Records the kernel for out = op(a)·op(b) (+ bias). No autograd. */
function matmulKernel(a: Tensor, b: Tensor, out: Tensor, g: Geometry, transA: boolean, transB: boolean, bias: Tensor | null, variant?: MatmulVariant, consts?: Record<string, number>): void {
  let { batch, M, strideA } = g;
  // A 2-D weight shared by a batch of untransposed rows is one tall GEMM: better tiles, one dispatch.
  if (batch > 1 && g.strideB === 0 && !transA) {
    M *= batch;
    batch = 1;
    strideA = 0;
  }
  const { N, K } = g;
  if (batch * M * N === 0) return;
  const limit = a.rt.caps.maxStorageBufferBindingSize;
  const bytesPer = BYTES_PER_ELEMENT[a.dtype];
  if (Math.max(a.size, b.size, out.size) * bytesPer <= limit) {
    gemm(a, b, out, bias, { M, N, K, batch, strideA, strideB: g.strideB, ldc: N }, transA, transB, {}, variant, consts);
    return;
  }
  // Bound in pieces: blocks of rows of A and C, and blocks of rows of Bᵀ (columns of C), each
  // piece cut where the binding offset is aligned.
  const fail = (why: string): never => {
    throw new ReefError(`matmul ${a.describe()} · ${b.describe()}: binding it in pieces of at most ${limit} bytes (the adapter's maxStorageBufferBindingSize): ${why}`);
  };
  const align = a.rt.caps.minStorageBufferOffsetAlignment;
  if (transA && batch === 1 && !transB && !bias && out.size * bytesPer <= limit) {
    // A weight gradient (xᵀ·dy over many tokens): blocks of the shared rows, each block's product
    // added to C in order (split-K; the sum order is fixed, so it stays deterministic).
    const kUnit = lcm(alignedCount(M * bytesPer, align), alignedCount(N * bytesPer, align));
    const kPer = Math.floor(limit / (Math.max(M, N) * bytesPer) / kUnit) * kUnit;
    if (kPer < 1) fail(`a block of ${kUnit} rows of A and B does not fit`);
    const partial = empty(a.rt, [M, N], out.dtype, 'matmul_split_k');
    try {
      for (let k0 = 0; k0 < K; k0 += kPer) {
        const rows = Math.min(kPer, K - k0);
        const into = k0 === 0 ? out : partial;
        const pieces = { a: bindRange(a, k0 * M, (k0 + rows) * M).slice, b: bindRange(b, k0 * N, (k0 + rows) * N).slice, c: into.buffer };
        gemm(a, b, into, null, { M, N, K: rows, batch: 1, strideA: 0, strideB: 0, ldc: N }, true, false, pieces, variant, consts);
        if (k0 > 0) accumulate(out, partial);
      }
    } finally {
      partial.dispose();
    }
    return;
  }
  if (batch > 1 || transA) fail('only a single (or batch-folded) GEMM with an untransposed A, or an Aᵀ·B whose output fits, can be split');
  const rowUnit = lcm(alignedCount(K * bytesPer, align), alignedCount(N * bytesPer, align));
  const rowsPer = Math.floor(limit / (Math.max(K, N) * bytesPer) / rowUnit) * rowUnit;
  if (rowsPer < 1) fail(`a block of ${rowUnit} rows does not fit`);
  let colsPer = N;
  if (b.size * bytesPer > limit) {
    if (!transB) fail('a B larger than a binding must be stored transposed ([N, K], as Linear weights are)');
    const colUnit = lcm(alignedCount(K * bytesPer, align), alignedCount(bytesPer, align));
    colsPer = Math.floor(limit / (K * bytesPer) / colUnit) * colUnit;
    if (colsPer < 1) fail(`a block of ${colUnit} rows of B does not fit`);
  }
  const slice = (t: Tensor, first: number, count: number) => bindRange(t, first, first + count).slice; // aligned by construction
  for (let m0 = 0; m0 < M; m0 += rowsPer) {
    const rows = Math.min(rowsPer, M - m0);
    for (let n0 = 0; n0 < N; n0 += colsPer) {
      const cols = Math.min(colsPer, N - n0);
      const buffers = {
        a: slice(a, m0 * K, rows * K),
        b: colsPer === N ? b.buffer : slice(b, n0 * K, cols * K),
        bias: bias ? (colsPer === N ? bias.buffer : slice(bias, n0, cols)) : undefined,
        c: slice(out, m0 * N + n0, (rows - 1) * N + cols),
      };
      gemm(a, b, out, bias, { M: rows, N: cols, K, batch: 1, strideA: 0, strideB: 0, ldc: N }, transA, transB, buffers, variant, consts);
    }
  }
}

interface GemmShape {
  M: number;
  N: number;
  K: number;
  batch: number;
  strideA: number;
  strideB: number;
  ldc: number;
}

/** One GEMM over whole buffers, or over the slices given. */
function gemm(a: Tensor, b: Tensor, out: Tensor, bias: Tensor | null, s: GemmShape, transA: boolean, transB: boolean, slices: Partial<Record<'a' | 'b' | 'bias' | 'c', BufferSlice | GPUBuffer | undefined>>, variant?: MatmulVariant, consts?: Record<string, number>): void {
  const rt = a.rt;
  const { M, N, K, batch } = s;
  const plan = planMatmul(rt, M, N, { transB }, variant, consts);
  const overrides: Record<string, boolean> = { TRANS_A: transA, HAS_BIAS: bias !== null };
  if (plan.shader !== 'regblock_vec4') overrides.TRANS_B = transB;
  const key: KernelKey = { shader: MATMUL_SHADERS[plan.shader], entry: 'main', elem: a.dtype, consts: plan.consts, overrides };
  const bytesPer = BYTES_PER_ELEMENT[a.dtype];
  const maxWg = rt.caps.maxWorkgroupsPerDimension;
  const rowTiles = Math.ceil(M / plan.tileM);
  const colTiles = Math.ceil(N / plan.tileN);
  if (colTiles > maxWg || batch > maxWg) {
    throw new ReefError(`matmul ${a.describe()} · ${b.describe()}: ${colTiles} column tiles or a batch of ${batch} exceed ${maxWg} workgroups per dimension`);
  }
  const buffers = { a: slices.a ?? a.buffer, b: slices.b ?? b.buffer, bias: slices.bias ?? (bias ? bias.buffer : rt.dummy), c: slices.c ?? out.buffer };
  const flops = 2 * batch * M * N * K;
  const whole = !slices.a && !slices.b && !slices.c;
  const bytes = bytesPer * (whole ? a.size + b.size + out.size : M * K + K * N + M * N);
  // Tall outputs (e.g. 4 × 117649 tokens) have more row tiles than one grid dimension holds: one
  // dispatch per chunk of rows, each told where its rows start.
  for (let rowTile0 = 0; rowTile0 < rowTiles; rowTile0 += maxWg) {
    const tiles = Math.min(maxWg, rowTiles - rowTile0);
    const share = tiles / rowTiles;
    rt.dispatch({
      kernel: key,
      buffers,
      params: { M, N, K, strideA: s.strideA, strideB: s.strideB, strideC: M * s.ldc, rowTile0, ldc: s.ldc },
      workgroups: plan.rowsInX ? [tiles, colTiles, batch] : [colTiles, tiles, batch],
      work: { flops: share * flops, bytes: share * bytes },
    });
  }
}

export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const bias = opts.bias ?? null;
  const g = geometry(a, b, transA, transB);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== g.N || bias.dtype !== a.dtype)) {
    throw new ReefError(`matmul: bias ${bias.describe()} must be ${a.dtype}[${g.N}]`);
  }
  const out = empty(a.rt, g.outShape, a.dtype, 'matmul');
  try {
    matmulKernel(a, b, out, g, transA, transB, bias, opts.variant, opts.consts);
  } catch (e) {
    out.dispose();
    throw e;
  }
  const inputs = bias ? [a, b, bias] : [a, b];
  return record('matmul', out, inputs, [a, b], (grad, [as, bs]) =>
    noGrad(() => {
      const variant = opts.variant;
      const da = a.requiresGrad ? gradA(as!, bs!, grad, transA, transB, variant) : null;
      const db = b.requiresGrad ? gradB(as!, bs!, grad, transA, transB, variant) : null;
      const dbias = bias?.requiresGrad ? sum(grad, grad.shape.slice(0, -1).map((_, i) => i)) : null;
      return bias ? [da, db, dbias] : [da, db];
    }),
  );
}

/** Sums a batched gradient over its batch axes when the operand was a shared 2-D matrix. */
function sharedGrad(batched: Tensor, operand: Tensor): Tensor {
  if (batched.ndim === operand.ndim) return batched;
  const s = sum(batched, batched.shape.slice(0, -2).map((_, i) => i));
  batched.dispose();
  return s;
}

// dA: op(A) = G·op(B)ᵀ. Stored A (transA) is the transpose of that: op(B)·Gᵀ.
function gradA(a: Tensor, b: Tensor, g: Tensor, transA: boolean, transB: boolean, variant?: MatmulVariant): Tensor {
  const d = transA ? matmul(b, g, { transA: transB, transB: true, variant }) : matmul(g, b, { transB: !transB, variant });
  return sharedGrad(d, a);
}

// dB: op(B) = op(A)ᵀ·G. Stored B (transB) is Gᵀ·op(A).
function gradB(a: Tensor, b: Tensor, g: Tensor, transA: boolean, transB: boolean, variant?: MatmulVariant): Tensor {
  if (b.ndim === 2 && g.ndim > 2 && !transA) {
    // Shared weight: fold the batch into the rows, one GEMM sums over it.
    const rows = g.size / g.shape[g.ndim - 1]!;
    const a2 = reshape(a, [rows, a.shape[a.ndim - 1]!]);
    const g2 = reshape(g, [rows, g.shape[g.ndim - 1]!]);
    const d = transB ? matmul(g2, a2, { transA: true, variant }) : matmul(a2, g2, { transA: true, variant });
    a2.dispose();
    g2.dispose();
    return d;
  }
  const d = transB ? matmul(g, a, { transA: true, transB: transA, variant }) : matmul(a, g, { transA: !transA, variant });
  return sharedGrad(d, b);
}
