/**
 * A feature map shown as colour: the top three principal components of its C channels over the
 * D·H·W cells (each cell one sample), each scaled to [0, 255] and used as R, G and B, resampled
 * trilinearly onto the scan's voxel grid. All on the host in float64, from a read-back map: C is
 * at most a few hundred, so the C×C covariance and its leading eigenvectors are cheap next to the
 * model, and float64 keeps the result independent of the GPU's summation order.
 */
import { ReefError } from '../gpu/errors.js';
import { featureStride } from '../models/swin3d/features.js';

export interface Pca {
  /** Channel means, length C. */
  mean: Float64Array;
  /** Unit eigenvectors of the covariance, largest variance first, each of length C. */
  components: Float64Array[];
  /** Their eigenvalues (variances along them). */
  variances: number[];
  /** Sum of all eigenvalues (the trace), for the fraction each component explains. */
  totalVariance: number;
  iterations: number;
  converged: boolean;
}

/**
 * Channel means and the C×C sample covariance (row-major, divided by N − 1, or by 1 when N = 1) of
 * a channels-first map: `map[c·N + n]` is channel c at cell n.
 */
export function covariance(map: ArrayLike<number>, C: number, N: number): { mean: Float64Array; cov: Float64Array } {
  if (map.length !== C * N) throw new ReefError(`covariance: ${map.length} values for ${C} channels × ${N} cells`);
  const mean = new Float64Array(C);
  const centred = new Float64Array(C * N);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) s += map[c * N + n]!;
    const m = s / N;
    mean[c] = m;
    for (let n = 0; n < N; n++) centred[c * N + n] = map[c * N + n]! - m;
  }
  const cov = new Float64Array(C * C);
  const div = Math.max(N - 1, 1);
  for (let a = 0; a < C; a++) {
    for (let b = a; b < C; b++) {
      let s = 0;
      const oa = a * N;
      const ob = b * N;
      for (let n = 0; n < N; n++) s += centred[oa + n]! * centred[ob + n]!;
      cov[a * C + b] = cov[b * C + a] = s / div;
    }
  }
  return { mean, cov };
}

/**
 * All eigenpairs of a small symmetric matrix by cyclic Jacobi rotations, values descending. Used
 * for the projected p×p problem of the subspace iteration, where p ≤ 8.
 */
function smallSymmetricEigen(H: Float64Array, p: number): { values: number[]; vectors: Float64Array } {
  const a = Float64Array.from(H);
  const v = new Float64Array(p * p);
  for (let i = 0; i < p; i++) v[i * p + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < p; i++) {
      diag += a[i * p + i]! ** 2;
      for (let j = i + 1; j < p; j++) off += a[i * p + j]! ** 2;
    }
    if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
    for (let i = 0; i < p; i++) {
      for (let j = i + 1; j < p; j++) {
        const aij = a[i * p + j]!;
        if (aij === 0) continue;
        const theta = (a[j * p + j]! - a[i * p + i]!) / (2 * aij);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        // A ← Jᵀ A J on rows/columns i and j.
        for (let k = 0; k < p; k++) {
          const aki = a[k * p + i]!;
          const akj = a[k * p + j]!;
          a[k * p + i] = c * aki - s * akj;
          a[k * p + j] = s * aki + c * akj;
        }
        for (let k = 0; k < p; k++) {
          const aik = a[i * p + k]!;
          const ajk = a[j * p + k]!;
          a[i * p + k] = c * aik - s * ajk;
          a[j * p + k] = s * aik + c * ajk;
        }
        for (let k = 0; k < p; k++) {
          const vki = v[k * p + i]!;
          const vkj = v[k * p + j]!;
          v[k * p + i] = c * vki - s * vkj;
          v[k * p + j] = s * vki + c * vkj;
        }
      }
    }
  }
  const order = [...Array(p).keys()].sort((x, y) => a[y * p + y]! - a[x * p + x]!);
  const vectors = new Float64Array(p * p);
  order.forEach((src, dst) => {
    for (let k = 0; k < p; k++) vectors[k * p + dst] = v[k * p + src]!;
  });
  return { values: order.map((i) => a[i * p + i]!), vectors };
}

/** Orthonormalises the p columns of an n×p column-major block in place (Gram–Schmidt, twice). */
function orthonormalise(Q: Float64Array, n: number, p: number): void {
  // The norm left after removing the earlier columns, relative to the column's own norm.
  const reduce = (j: number): number => {
    const qj = Q.subarray(j * n, (j + 1) * n);
    let before = 0;
    for (let k = 0; k < n; k++) before += qj[k]! ** 2;
    if (!(before > 0)) return 0;
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        const qi = Q.subarray(i * n, (i + 1) * n);
        let d = 0;
        for (let k = 0; k < n; k++) d += qi[k]! * qj[k]!;
        for (let k = 0; k < n; k++) qj[k]! -= d * qi[k]!;
      }
    }
    let after = 0;
    for (let k = 0; k < n; k++) after += qj[k]! ** 2;
    return Math.sqrt(after / before) < 1e-10 ? 0 : Math.sqrt(after);
  };
  for (let j = 0; j < p; j++) {
    const qj = Q.subarray(j * n, (j + 1) * n);
    let norm = reduce(j);
    // A column in the span of the earlier ones (a rank-deficient matrix): any unit vector
    // orthogonal to them will do, and among the n axes at least one is not in their span.
    for (let t = 0; norm === 0 && t < n; t++) {
      qj.fill(0);
      qj[(j + t) % n] = 1;
      norm = reduce(j);
    }
    for (let k = 0; k < n; k++) qj[k]! /= norm;
  }
}

export interface EigenOptions {
  /** Stop when every wanted Ritz pair has ‖Av − λv‖ ≤ tol·λ₁. Default 1e-10. */
  tol?: number;
  maxIterations?: number;
}

/**
 * The k largest eigenpairs of a symmetric positive semi-definite n×n matrix (row-major) by block
 * power (subspace) iteration with Rayleigh–Ritz, on a block of k + 5 vectors so that close
 * eigenvalues just past the k-th do not slow it down. Exact in one step when the block spans the
 * whole space (n ≤ k + 5). Signs are fixed so each vector's largest-magnitude entry is positive.
 */
export function topEigenpairs(A: Float64Array, n: number, k: number, opts: EigenOptions = {}): { values: number[]; vectors: Float64Array[]; iterations: number; converged: boolean } {
  if (A.length !== n * n) throw new ReefError(`topEigenpairs: ${A.length} values for a ${n}×${n} matrix`);
  k = Math.min(k, n);
  const p = Math.min(n, k + 5);
  const tol = opts.tol ?? 1e-10;
  const maxIt = opts.maxIterations ?? 2000;
  // A fixed pseudo-random start (an LCG), so the same matrix always gives the same result.
  let Q = new Float64Array(n * p);
  let s = 12345;
  for (let i = 0; i < Q.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    Q[i] = s / 2 ** 32 - 0.5;
  }
  orthonormalise(Q, n, p);
  const W = new Float64Array(n * p);
  let values: number[] = [];
  let V = new Float64Array(n * p);
  let it = 0;
  let converged = false;
  for (; it < maxIt; it++) {
    // W = A·Q (columns).
    for (let j = 0; j < p; j++) {
      for (let r = 0; r < n; r++) {
        let d = 0;
        const row = r * n;
        for (let c = 0; c < n; c++) d += A[row + c]! * Q[j * n + c]!;
        W[j * n + r] = d;
      }
    }
    // H = Qᵀ·W, symmetrised; its eigenvectors rotate Q into Ritz vectors.
    const H = new Float64Array(p * p);
    for (let a = 0; a < p; a++) {
      for (let b = a; b < p; b++) {
        let d1 = 0;
        let d2 = 0;
        for (let r = 0; r < n; r++) {
          d1 += Q[a * n + r]! * W[b * n + r]!;
          d2 += Q[b * n + r]! * W[a * n + r]!;
        }
        H[a * p + b] = H[b * p + a] = (d1 + d2) / 2;
      }
    }
    const e = smallSymmetricEigen(H, p);
    values = e.values;
    V = new Float64Array(n * p);
    const AV = new Float64Array(n * p);
    for (let j = 0; j < p; j++) {
      for (let i = 0; i < p; i++) {
        const u = e.vectors[i * p + j]!;
        if (u === 0) continue;
        for (let r = 0; r < n; r++) {
          V[j * n + r]! += u * Q[i * n + r]!;
          AV[j * n + r]! += u * W[i * n + r]!;
        }
      }
    }
    let worst = 0;
    for (let j = 0; j < k; j++) {
      let rr = 0;
      for (let r = 0; r < n; r++) rr += (AV[j * n + r]! - values[j]! * V[j * n + r]!) ** 2;
      worst = Math.max(worst, Math.sqrt(rr));
    }
    const scale = Math.max(Math.abs(values[0] ?? 0), 1e-300);
    if (p === n || worst <= tol * scale) {
      converged = true;
      it++;
      break;
    }
    // The next power step starts from A·(Ritz vectors).
    Q = AV;
    orthonormalise(Q, n, p);
  }
  const vectors: Float64Array[] = [];
  for (let j = 0; j < k; j++) {
    const v = Float64Array.from(V.subarray(j * n, (j + 1) * n));
    let big = 0;
    for (let r = 0; r < n; r++) if (Math.abs(v[r]!) > Math.abs(v[big]!)) big = r;
    if (v[big]! < 0) for (let r = 0; r < n; r++) v[r] = -v[r]!;
    vectors.push(v);
  }
  return { values: values.slice(0, k), vectors, iterations: it, converged };
}

/** The top-k principal components of a channels-first map (C channels × N cells). */
export function principalComponents(map: ArrayLike<number>, C: number, N: number, k = 3, opts: EigenOptions = {}): Pca {
  const { mean, cov } = covariance(map, C, N);
  let trace = 0;
  for (let c = 0; c < C; c++) trace += cov[c * C + c]!;
  const e = topEigenpairs(cov, C, k, opts);
  return { mean, components: e.vectors, variances: e.values, totalVariance: trace, iterations: e.iterations, converged: e.converged };
}

/** Each cell's coordinate along the components: scores[k][n] = v_kᵀ(x_n − μ). */
export function projectScores(map: ArrayLike<number>, C: number, N: number, pca: Pca): Float64Array[] {
  return pca.components.map((v) => {
    const out = new Float64Array(N);
    for (let c = 0; c < C; c++) {
      const w = v[c]!;
      const m = pca.mean[c]!;
      if (w === 0) continue;
      for (let n = 0; n < N; n++) out[n]! += w * (map[c * N + n]! - m);
    }
    return out;
  });
}

/**
 * Trilinear resampling of a cell grid onto a finer voxel grid, where one cell spans `stride` voxels
 * per axis and cell f's centre sits at voxel (f + ½)·stride − ½; voxels past the first or last
 * centre take the edge value. Both grids row-major (D, H, W).
 */
export function resampleTrilinear(cells: ArrayLike<number>, cellShape: readonly number[], outShape: readonly number[], stride: readonly number[]): Float32Array {
  const taps = [0, 1, 2].map((a) => {
    const m = cellShape[a]!;
    const n = outShape[a]!;
    const i0 = new Int32Array(n);
    const i1 = new Int32Array(n);
    const f = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const u = Math.min(Math.max((i + 0.5) / stride[a]! - 0.5, 0), m - 1);
      const lo = Math.min(Math.floor(u), m - 1);
      i0[i] = lo;
      i1[i] = Math.min(lo + 1, m - 1);
      f[i] = u - lo;
    }
    return { i0, i1, f };
  });
  const [D, H, W] = outShape as [number, number, number];
  const [, mh, mw] = cellShape as [number, number, number];
  const [td, th, tw] = taps as [(typeof taps)[0], (typeof taps)[0], (typeof taps)[0]];
  const out = new Float32Array(D * H * W);
  const at = (d: number, h: number, w: number) => cells[(d * mh + h) * mw + w]!;
  for (let d = 0; d < D; d++) {
    const d0 = td.i0[d]!, d1 = td.i1[d]!, fd = td.f[d]!;
    for (let h = 0; h < H; h++) {
      const h0 = th.i0[h]!, h1 = th.i1[h]!, fh = th.f[h]!;
      for (let w = 0; w < W; w++) {
        const w0 = tw.i0[w]!, w1 = tw.i1[w]!, fw = tw.f[w]!;
        const c00 = at(d0, h0, w0) * (1 - fw) + at(d0, h0, w1) * fw;
        const c01 = at(d0, h1, w0) * (1 - fw) + at(d0, h1, w1) * fw;
        const c10 = at(d1, h0, w0) * (1 - fw) + at(d1, h0, w1) * fw;
        const c11 = at(d1, h1, w0) * (1 - fw) + at(d1, h1, w1) * fw;
        const c0 = c00 * (1 - fh) + c01 * fh;
        const c1 = c10 * (1 - fh) + c11 * fh;
        out[(d * H + h) * W + w] = c0 * (1 - fd) + c1 * fd;
      }
    }
  }
  return out;
}

/** The q-quantile (0…1) of the values, by sorting a copy (nearest rank below). */
function quantile(x: ArrayLike<number>, q: number): number {
  const s = Float64Array.from(x).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.floor(q * (s.length - 1))))]!;
}

export interface PcaRgbOptions {
  /** Voxels per cell along each axis; by default read off the two shapes (see featureStride). */
  stride?: readonly number[];
  /** Each component's [q, 1 − q] quantile range is stretched over 0…255. Default 0.01. */
  clip?: number;
  /**
   * Cells (length d·h·w, non-zero = in) whose features define the components and the colour
   * ranges, e.g. the cells inside the body, so that air does not take the first component; every
   * cell is still coloured. Ignored when it selects fewer than two cells.
   */
  mask?: ArrayLike<number | boolean>;
  eigen?: EigenOptions;
}

export interface PcaRgb {
  /** Interleaved R, G, B bytes per scan voxel, in the scan's row-major (D, H, W) order. */
  rgb: Uint8Array;
  pca: Pca;
  /** The score range mapped to 0…255, per component. */
  ranges: [number, number][];
  stride: number[];
}

/**
 * The RGB picture of a channels-first feature map `map` (1, C, d, h, w) on a scan grid of
 * `scanShape` (D, H, W): principal components, per-component scaling, trilinear resampling.
 * Fewer than three channels leave the missing colours at 0.
 */
export function pcaRgb(map: ArrayLike<number>, mapShape: readonly number[], scanShape: readonly number[], opts: PcaRgbOptions = {}): PcaRgb {
  const dims = mapShape.length === 5 ? mapShape.slice(1) : mapShape;
  if (dims.length !== 4 || (mapShape.length === 5 && mapShape[0] !== 1)) throw new ReefError(`pcaRgb: expected a (1, C, D, H, W) map, got [${mapShape.join(', ')}]`);
  const [C, ...cellShape] = dims as [number, number, number, number];
  const N = cellShape[0]! * cellShape[1]! * cellShape[2]!;
  if (map.length !== C * N) throw new ReefError(`pcaRgb: ${map.length} values for a [${mapShape.join(', ')}] map`);
  const stride = [...(opts.stride ?? featureStride(scanShape, cellShape))];
  let inside: number[] | null = null;
  if (opts.mask) {
    if (opts.mask.length !== N) throw new ReefError(`pcaRgb: a mask of ${opts.mask.length} cells for a map of ${N}`);
    inside = [];
    for (let n = 0; n < N; n++) if (opts.mask[n]) inside.push(n);
    if (inside.length < 2) inside = null;
  }
  let sample: ArrayLike<number> = map;
  if (inside) {
    const M = inside.length;
    const sub = new Float32Array(C * M);
    for (let c = 0; c < C; c++) inside.forEach((n, m) => (sub[c * M + m] = map[c * N + n]!));
    sample = sub;
  }
  const pca = principalComponents(sample, C, inside ? inside.length : N, 3, opts.eigen);
  const scores = projectScores(map, C, N, pca);
  const q = opts.clip ?? 0.01;
  const ranges = scores.map((s): [number, number] => {
    const used = inside ? inside.map((n) => s[n]!) : s;
    return [quantile(used, q), quantile(used, 1 - q)];
  });
  const V = scanShape[0]! * scanShape[1]! * scanShape[2]!;
  const rgb = new Uint8Array(3 * V);
  scores.forEach((s, k) => {
    const [lo, hi] = ranges[k]!;
    const span = hi - lo;
    const fine = resampleTrilinear(s, cellShape, scanShape, stride);
    for (let v = 0; v < V; v++) {
      const t = span > 1e-12 * Math.max(Math.abs(lo), Math.abs(hi), 1e-30) ? (fine[v]! - lo) / span : 0.5;
      rgb[3 * v + k] = Math.round(255 * Math.min(1, Math.max(0, t)));
    }
  });
  return { rgb, pca, ranges, stride };
}
