/**
 * Float64 CPU reference implementations of reef's ops (forward pass).
 *
 * Everything is dense row-major, computed in float64 with plain loops, and never mutates inputs.
 * These are the "ground truth" the GPU kernels are tested against; clarity beats speed, but they
 * stay O(n) / O(M·N·K) with no per-element allocation so ~1e5-element arrays are fine.
 */
import { type Arr, arr, numel, shapesEqual, strides } from './array';

// ---------------------------------------------------------------------------------------------
// Internal indexing helpers (exported for grads.ts; not part of the "op" surface).
// ---------------------------------------------------------------------------------------------

/**
 * Linear offsets into a source buffer for every element (in row-major order) of a strided view
 * with the given `shape`, base `offset` and per-axis `viewStrides` (strides may be 0 for
 * broadcasting). One allocation per call; the odometer increment is amortised O(1).
 */
export function viewOffsets(shape: readonly number[], offset: number, viewStrides: readonly number[]): Int32Array {
  const n = numel(shape);
  const out = new Int32Array(n);
  if (n === 0) return out;
  const r = shape.length;
  const idx = new Array<number>(r).fill(0);
  let off = offset;
  for (let i = 0; i < n; i++) {
    out[i] = off;
    for (let d = r - 1; d >= 0; d--) {
      idx[d]!++;
      off += viewStrides[d]!;
      if (idx[d]! < shape[d]!) break;
      off -= viewStrides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** NumPy broadcast of two shapes (right-aligned; a dim of 1 stretches; missing leading dims are 1). */
export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out = new Array<number>(r);
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1;
    const db = b[b.length - r + i] ?? 1;
    if (da === db || db === 1) out[i] = da;
    else if (da === 1) out[i] = db;
    else throw new Error(`shapes [${a.join(',')}] and [${b.join(',')}] are not broadcastable`);
  }
  return out;
}

/**
 * Strides (one per axis of `outShape`) for reading an array of shape `inShape` as if it were
 * broadcast to `outShape`: 0 on stretched / missing axes, the row-major stride otherwise.
 */
export function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const r = outShape.length;
  if (inShape.length > r) throw new Error(`cannot broadcast [${inShape.join(',')}] to [${outShape.join(',')}]`);
  const st = strides(inShape);
  const out = new Array<number>(r).fill(0);
  for (let i = 0; i < inShape.length; i++) {
    const o = r - inShape.length + i;
    const d = inShape[i]!;
    if (d === 1) out[o] = 0;
    else if (d === outShape[o]) out[o] = st[i]!;
    else throw new Error(`cannot broadcast [${inShape.join(',')}] to [${outShape.join(',')}]`);
  }
  return out;
}

/** Normalises axes (negative allowed) to sorted unique non-negative ints; empty means all axes. */
export function normalizeAxes(axes: readonly number[], rank: number): number[] {
  if (axes.length === 0) return Array.from({ length: rank }, (_, i) => i);
  const set = new Set<number>();
  for (const a of axes) {
    if (!Number.isInteger(a) || a < -rank || a >= rank) throw new Error(`axis ${a} out of range for rank ${rank}`);
    set.add(a < 0 ? a + rank : a);
  }
  return [...set].sort((x, y) => x - y);
}

function normalizeAxis(axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** Copies the strided view (shape, offset, viewStrides) of `src` into a new dense array. */
function gather(src: Float64Array, shape: readonly number[], offset: number, viewStrides: readonly number[]): Arr {
  const offs = viewOffsets(shape, offset, viewStrides);
  const out = arr(shape);
  for (let i = 0; i < offs.length; i++) out.data[i] = src[offs[i]!]!;
  return out;
}

/**
 * C[m,n] += Σ_k A[m,k]·B[k,n] on strided logical matrices (transposes are just swapped strides).
 * C must not alias A or B.
 */
export function gemmAcc(
  M: number, N: number, K: number,
  A: Float64Array, aOff: number, sAm: number, sAk: number,
  B: Float64Array, bOff: number, sBk: number, sBn: number,
  C: Float64Array, cOff: number, sCm: number, sCn: number,
): void {
  for (let m = 0; m < M; m++) {
    const aRow = aOff + m * sAm;
    const cRow = cOff + m * sCm;
    for (let k = 0; k < K; k++) {
      const av = A[aRow + k * sAk]!;
      const bRow = bOff + k * sBk;
      for (let n = 0; n < N; n++) {
        const ci = cRow + n * sCn;
        C[ci] = C[ci]! + av * B[bRow + n * sBn]!;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------------------------

export interface MatmulOpts {
  /** a is stored as [..., K, M] and used transposed. */
  transA?: boolean;
  /** b is stored as [..., N, K] and used transposed. */
  transB?: boolean;
  /** [N], added to every output row. */
  bias?: Arr | null;
}

/** Resolved geometry of a (possibly batched, transposed, broadcast) matmul. */
export interface MatmulGeom {
  M: number; N: number; K: number;
  outBatch: number[];
  /** per output batch entry: element offset of its a / b matrix. */
  aOffs: Int32Array; bOffs: Int32Array;
  /** logical A[m,k] = a[aOff + m*sAm + k*sAk]; logical B[k,n] = b[bOff + k*sBk + n*sBn]. */
  sAm: number; sAk: number; sBk: number; sBn: number;
}

export function matmulGeom(aShape: readonly number[], bShape: readonly number[], opts: MatmulOpts = {}): MatmulGeom {
  const ra = aShape.length;
  const rb = bShape.length;
  if (ra < 2 || rb < 2) throw new Error(`matmul needs rank ≥ 2 operands, got [${aShape.join(',')}] and [${bShape.join(',')}]`);
  const a0 = aShape[ra - 2]!, a1 = aShape[ra - 1]!;
  const b0 = bShape[rb - 2]!, b1 = bShape[rb - 1]!;
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  const M = transA ? a1 : a0;
  const K = transA ? a0 : a1;
  const Kb = transB ? b1 : b0;
  const N = transB ? b0 : b1;
  if (K !== Kb) throw new Error(`matmul inner dims differ: a [${aShape.join(',')}]${transA ? 'ᵀ' : ''} b [${bShape.join(',')}]${transB ? 'ᵀ' : ''}`);
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  const outBatch = broadcastShapes(aBatch, bBatch);
  const aOffs = viewOffsets(outBatch, 0, broadcastStrides(aBatch, outBatch));
  const bOffs = viewOffsets(outBatch, 0, broadcastStrides(bBatch, outBatch));
  for (let i = 0; i < aOffs.length; i++) aOffs[i] = aOffs[i]! * (M * K);
  for (let i = 0; i < bOffs.length; i++) bOffs[i] = bOffs[i]! * (K * N);
  return {
    M, N, K, outBatch, aOffs, bOffs,
    sAm: transA ? 1 : K, sAk: transA ? M : 1,
    sBk: transB ? 1 : N, sBn: transB ? K : 1,
  };
}

/**
 * Batched matrix product. a: [...batch, M, K] ([..., K, M] with transA); b: [...batch, K, N]
 * ([..., N, K] with transB), or 2-D to share one matrix across the batch. Batch dims broadcast
 * NumPy-style in general. Optional bias [N] is added to every row. Output [...batch, M, N].
 */
export function matmul(a: Arr, b: Arr, opts: MatmulOpts = {}): Arr {
  const g = matmulGeom(a.shape, b.shape, opts);
  const { M, N, K } = g;
  const out = arr([...g.outBatch, M, N]);
  for (let bi = 0; bi < g.aOffs.length; bi++) {
    gemmAcc(M, N, K, a.data, g.aOffs[bi]!, g.sAm, g.sAk, b.data, g.bOffs[bi]!, g.sBk, g.sBn, out.data, bi * M * N, N, 1);
  }
  const bias = opts.bias;
  if (bias) {
    if (!shapesEqual(bias.shape, [N])) throw new Error(`matmul bias must be [${N}], got [${bias.shape.join(',')}]`);
    for (let r = 0; r < out.data.length; r += N) for (let n = 0; n < N; n++) out.data[r + n] = out.data[r + n]! + bias.data[n]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Elementwise
// ---------------------------------------------------------------------------------------------

function binary(a: Arr, b: Arr, f: (x: number, y: number) => number): Arr {
  const shape = broadcastShapes(a.shape, b.shape);
  const oa = viewOffsets(shape, 0, broadcastStrides(a.shape, shape));
  const ob = viewOffsets(shape, 0, broadcastStrides(b.shape, shape));
  const out = arr(shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = f(a.data[oa[i]!]!, b.data[ob[i]!]!);
  return out;
}

/** a + b with NumPy broadcasting. */
export function add(a: Arr, b: Arr): Arr {
  return binary(a, b, (x, y) => x + y);
}
/** a − b with NumPy broadcasting. */
export function sub(a: Arr, b: Arr): Arr {
  return binary(a, b, (x, y) => x - y);
}
/** a ⊙ b with NumPy broadcasting. */
export function mul(a: Arr, b: Arr): Arr {
  return binary(a, b, (x, y) => x * y);
}
/** s·a. */
export function scale(a: Arr, s: number): Arr {
  const out = arr(a.shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = a.data[i]! * s;
  return out;
}

/** Materialises x broadcast to `shape` (NumPy rules). */
export function broadcastTo(x: Arr, shape: readonly number[]): Arr {
  return gather(x.data, shape, 0, broadcastStrides(x.shape, shape));
}

// --- erf / erfc ------------------------------------------------------------------------------

const TWO_OVER_SQRT_PI = 1.1283791670955126; // 2/√π
const ONE_OVER_SQRT_PI = 0.5641895835477563; // 1/√π

/**
 * erf for |x| < ~3 via the all-positive series
 *   erf(x) = (2/√π)·e^{−x²}·Σ_{n≥0} 2ⁿ x^{2n+1} / (1·3·5···(2n+1)),
 * which has no cancellation (≈1e-16 relative for |x| ≤ 2.5).
 */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 1000; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/**
 * erfc for x ≥ 1 via the continued fraction
 *   erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
 * evaluated with the modified Lentz algorithm (≤ ~200 terms at x = 1, fewer for larger x).
 */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let C = x;
  let D = 0;
  for (let n = 1; n < 10000; n++) {
    const an = n / 2;
    D = x + an * D;
    if (D === 0) D = tiny;
    D = 1 / D;
    C = x + an / C;
    if (C === 0) C = tiny;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) <= 2.220446049250313e-16) break;
  }
  return (Math.exp(-x * x) * ONE_OVER_SQRT_PI) / f;
}

/** Error function, ≈1e-15 relative accuracy over the whole real line. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) return erfSeries(x);
  if (ax === Infinity) return x < 0 ? -1 : 1;
  const r = 1 - erfcContinuedFraction(ax);
  return x < 0 ? -r : r;
}

/** Complementary error function 1 − erf(x), accurate (relative) also deep in the tail. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return 0;
  if (x < 0) return 1 + erf(-x); // ∈ (1, 2]: no cancellation
  if (x < 1) return 1 - erfSeries(x); // erfc ≥ 0.157 here: at most ~3 bits lost
  return erfcContinuedFraction(x);
}

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 0.3989422804014327; // 1/√(2π)

/** Standard normal CDF Φ(x) = ½·erfc(−x/√2) (relative-accurate in the left tail too). */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x * SQRT1_2);
}
/** Standard normal PDF φ(x). */
export function normalPdf(x: number): number {
  return INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/** Exact GELU: 0.5·x·(1 + erf(x/√2)) = x·Φ(x). */
export function gelu(x: Arr): Arr {
  const out = arr(x.shape);
  for (let i = 0; i < out.data.length; i++) {
    const v = x.data[i]!;
    out.data[i] = v * normalCdf(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Normalisation / softmax (last axis)
// ---------------------------------------------------------------------------------------------

function lastDim(x: Arr, what: string): number {
  if (x.shape.length === 0) throw new Error(`${what} needs rank ≥ 1`);
  return x.shape[x.shape.length - 1]!;
}

/** Per-row mean and reciprocal std (biased variance, as PyTorch) over the last axis. */
export function layerNormStats(x: Arr, eps: number): { mean: Float64Array; rstd: Float64Array } {
  const C = lastDim(x, 'layerNorm');
  const rows = C === 0 ? 0 : x.data.length / C;
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    let s = 0;
    for (let c = 0; c < C; c++) s += x.data[o + c]!;
    const mu = s / C;
    let v = 0;
    for (let c = 0; c < C; c++) {
      const d = x.data[o + c]! - mu;
      v += d * d;
    }
    mean[r] = mu;
    rstd[r] = 1 / Math.sqrt(v / C + eps);
  }
  return { mean, rstd };
}

/**
 * LayerNorm over the last axis: (x − mean)/√(var + eps)·weight + bias, var biased (÷C).
 * weight / bias are [C] or null (no affine part).
 */
export function layerNorm(x: Arr, weight: Arr | null, bias: Arr | null, eps = 1e-5): Arr {
  const C = lastDim(x, 'layerNorm');
  if (weight && !shapesEqual(weight.shape, [C])) throw new Error(`layerNorm weight must be [${C}]`);
  if (bias && !shapesEqual(bias.shape, [C])) throw new Error(`layerNorm bias must be [${C}]`);
  const { mean, rstd } = layerNormStats(x, eps);
  const out = arr(x.shape);
  for (let r = 0; r < mean.length; r++) {
    const o = r * C;
    const mu = mean[r]!;
    const rs = rstd[r]!;
    for (let c = 0; c < C; c++) {
      let y = (x.data[o + c]! - mu) * rs;
      if (weight) y *= weight.data[c]!;
      if (bias) y += bias.data[c]!;
      out.data[o + c] = y;
    }
  }
  return out;
}

/** Softmax over the last axis (max-subtracted). */
export function softmax(x: Arr): Arr {
  const C = lastDim(x, 'softmax');
  const out = arr(x.shape);
  for (let o = 0; o < x.data.length; o += C) {
    let mx = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, x.data[o + c]!);
    let s = 0;
    for (let c = 0; c < C; c++) {
      const e = Math.exp(x.data[o + c]! - mx);
      out.data[o + c] = e;
      s += e;
    }
    for (let c = 0; c < C; c++) out.data[o + c] = out.data[o + c]! / s;
  }
  return out;
}

/** log-softmax over the last axis: x − max − log Σ exp(x − max). */
export function logSoftmax(x: Arr): Arr {
  const C = lastDim(x, 'logSoftmax');
  const out = arr(x.shape);
  for (let o = 0; o < x.data.length; o += C) {
    let mx = -Infinity;
    for (let c = 0; c < C; c++) mx = Math.max(mx, x.data[o + c]!);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(x.data[o + c]! - mx);
    const lse = mx + Math.log(s);
    for (let c = 0; c < C; c++) out.data[o + c] = x.data[o + c]! - lse;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reductions
// ---------------------------------------------------------------------------------------------

/** Shape of a reduction over (normalised) `axes`, with or without the reduced dims kept as 1. */
export function reducedShape(shape: readonly number[], axes: readonly number[], keepDims: boolean): number[] {
  const ax = new Set(normalizeAxes(axes, shape.length));
  const out: number[] = [];
  shape.forEach((d, i) => {
    if (!ax.has(i)) out.push(d);
    else if (keepDims) out.push(1);
  });
  return out;
}

/** Sums x down to `target` (same rank or fewer, every target dim 1 or equal): inverse of broadcast. */
export function sumTo(x: Arr, target: readonly number[]): Arr {
  const offs = viewOffsets(x.shape, 0, broadcastStrides(target, x.shape));
  const out = arr(target);
  for (let i = 0; i < offs.length; i++) {
    const o = offs[i]!;
    out.data[o] = out.data[o]! + x.data[i]!;
  }
  return out;
}

/** Number of input elements folded into each output element of a reduction over `axes`. */
export function reductionCount(shape: readonly number[], axes: readonly number[]): number {
  return normalizeAxes(axes, shape.length).reduce((p, a) => p * shape[a]!, 1);
}

/** Sum over `axes` (negative allowed; empty = all axes). */
export function sum(x: Arr, axes: number[], keepDims = false): Arr {
  const kept = reducedShape(x.shape, axes, true);
  const s = sumTo(x, kept);
  return keepDims ? s : { data: s.data, shape: reducedShape(x.shape, axes, false) };
}

/** Mean over `axes` (negative allowed; empty = all axes). */
export function mean(x: Arr, axes: number[], keepDims = false): Arr {
  const s = sum(x, axes, keepDims);
  const cnt = reductionCount(x.shape, axes);
  for (let i = 0; i < s.data.length; i++) s.data[i] = s.data[i]! / cnt;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Shape ops
// ---------------------------------------------------------------------------------------------

/** Reshape (copy). One dimension may be −1 (inferred). */
export function reshape(x: Arr, shape: readonly number[]): Arr {
  const n = x.data.length;
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    const rest = s.reduce((p, d, i) => (i === neg ? p : p * d), 1);
    if (rest === 0 || n % rest !== 0) throw new Error(`cannot infer -1 in reshape [${shape.join(',')}] of ${n} elements`);
    s[neg] = n / rest;
  }
  if (numel(s) !== n) throw new Error(`reshape [${x.shape.join(',')}] → [${shape.join(',')}]: element count differs`);
  return arr(s, x.data);
}

function checkPerm(perm: readonly number[], rank: number): void {
  if (perm.length !== rank) throw new Error(`permutation [${perm.join(',')}] has wrong length for rank ${rank}`);
  const seen = new Array<boolean>(rank).fill(false);
  for (const p of perm) {
    if (!Number.isInteger(p) || p < 0 || p >= rank || seen[p]) throw new Error(`invalid permutation [${perm.join(',')}]`);
    seen[p] = true;
  }
}

/** Axis permutation: out.shape[i] = x.shape[perm[i]] (like torch.permute / np.transpose). */
export function permute(x: Arr, perm: readonly number[]): Arr {
  checkPerm(perm, x.shape.length);
  const st = strides(x.shape);
  return gather(x.data, perm.map((p) => x.shape[p]!), 0, perm.map((p) => st[p]!));
}

/** Inverse of a permutation: permute(permute(x, p), inversePerm(p)) = x. */
export function inversePerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

/** Validates a full-rank slice and returns its output shape, base offset and strides in x. */
export function sliceView(
  shape: readonly number[], starts: readonly number[], ends: readonly number[],
): { outShape: number[]; offset: number; st: number[] } {
  const r = shape.length;
  if (starts.length !== r || ends.length !== r) throw new Error(`slice needs ${r} starts and ends`);
  const st = strides(shape);
  let offset = 0;
  const outShape = new Array<number>(r);
  for (let d = 0; d < r; d++) {
    const s = starts[d]!, e = ends[d]!;
    if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e < s || e > shape[d]!) {
      throw new Error(`slice axis ${d}: [${s}, ${e}) invalid for dim ${shape[d]}`);
    }
    outShape[d] = e - s;
    offset += s * st[d]!;
  }
  return { outShape, offset, st };
}

/** x[starts[0]:ends[0], starts[1]:ends[1], …] with per-axis half-open ranges (full rank, 0 ≤ s ≤ e ≤ dim). */
export function slice(x: Arr, starts: readonly number[], ends: readonly number[]): Arr {
  const v = sliceView(x.shape, starts, ends);
  return gather(x.data, v.outShape, v.offset, v.st);
}

/** Concatenation along `axis` (negative allowed); all other dims must agree. */
export function concat(xs: readonly Arr[], axis: number): Arr {
  if (xs.length === 0) throw new Error('concat of nothing');
  const first = xs[0]!;
  const r = first.shape.length;
  const ax = normalizeAxis(axis, r);
  let total = 0;
  for (const x of xs) {
    if (x.shape.length !== r || x.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new Error(`concat: shape [${x.shape.join(',')}] incompatible with [${first.shape.join(',')}] on axis ${ax}`);
    }
    total += x.shape[ax]!;
  }
  const outShape = [...first.shape];
  outShape[ax] = total;
  const out = arr(outShape);
  const ost = strides(outShape);
  let start = 0;
  for (const x of xs) {
    const offs = viewOffsets(x.shape, start * ost[ax]!, ost);
    for (let i = 0; i < offs.length; i++) out.data[offs[i]!] = x.data[i]!;
    start += x.shape[ax]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------------

/**
 * Soft-target cross entropy: mean over the N rows of −Σ_c targets[n,c]·logSoftmax(logits)[n,c].
 * logits, targets: [N, C]. Targets are used as given (not renormalised). Returns a plain number.
 */
export function crossEntropySoft(logits: Arr, targets: Arr): number {
  if (logits.shape.length !== 2 || !shapesEqual(logits.shape, targets.shape)) {
    throw new Error(`crossEntropySoft needs matching [N,C] logits/targets, got [${logits.shape.join(',')}] / [${targets.shape.join(',')}]`);
  }
  const N = logits.shape[0]!;
  const ls = logSoftmax(logits);
  let total = 0;
  for (let i = 0; i < ls.data.length; i++) total -= targets.data[i]! * ls.data[i]!;
  return N === 0 ? 0 : total / N;
}
