/**
 * The baseline for the fused window attention: MONAI's 3D shifted-window attention written the way
 * PyTorch runs it, with every intermediate materialised in global memory and built only from
 * reef's general ops, so its backward comes from the tape:
 *
 *   pad q/k/v (padded tokens = qkv bias) → roll by −shift (slice + concat) → window partition
 *   (reshape + permute) → q·scale → S = q·kᵀ [windows, heads, n, n] → S + bias[heads, n, n]
 *   → S + mask[windows, 1, n, n] (shifted only) → softmax → P·v → reverse partition → roll back → crop.
 *
 * What is not PyTorch-like:
 * - The relative-position bias `table[index]` is gathered by a strided copy (copyStrided with
 *   two's-complement strides: the index is (Δz, Δy, Δx) of configured-window coordinates, affine in
 *   them, and MONAI's [:n, :n] slice is at most three regular token blocks per side). It is done in
 *   every call (as PyTorch does), costs a few tiny dispatches, and is NOT on the tape: the table
 *   gets no gradient (the fused op computes one). q, k, v and the qkv bias get theirs.
 * - The shift mask and the padded-position mask are geometry constants built on the host. Pass
 *   `constants` from `materialisedConstants` to build them once, outside a timed region; without
 *   it each call builds and frees its own.
 * - Scores larger than the adapter's maxStorageBufferBindingSize are computed in chunks of windows
 *   (each chunk: scores, bias, mask, softmax, P·v), and the chunk outputs concatenated.
 *
 * Intermediates are freed as soon as the next step has made its result (as PyTorch frees a tensor
 * when its last reference goes), so peak memory is that of the materialised computation, not of
 * every step at once.
 */
import { ReefError } from '../src/gpu/errors.js';
import type { Runtime } from '../src/gpu/runtime.js';
import { add, mul } from '../src/ops/binary.js';
import { matmul } from '../src/ops/matmul.js';
import { scale } from '../src/ops/pointwise.js';
import { concat, copyStrided, padEnd, permute, reshape, slice } from '../src/ops/shape.js';
import { softmax } from '../src/ops/softmax.js';
import type { WindowAttention3dArgs } from '../src/ops/window-attention3d.js';
import { shiftRegionLabels } from '../src/models/swin3d/window-geometry.js';
import { empty, tensor } from '../src/tensor/create.js';
import { BYTES_PER_ELEMENT, tidy, type DType, type Tensor } from '../src/tensor/tensor.js';

type Vec3 = readonly [number, number, number];

/** The baseline takes q, k and v as three tensors. */
export type SeparateQkvArgs = WindowAttention3dArgs & Required<Pick<WindowAttention3dArgs, 'q' | 'k' | 'v'>>;

export interface MaterialisedAttentionArgs extends SeparateQkvArgs {
  /** Geometry constants from `materialisedConstants` (else built and freed inside the call). */
  constants?: MaterialisedConstants;
  /** Windows per score chunk (default: as many as one storage binding holds). Ignored with `constants`. */
  windowsPerChunk?: number;
}

/** Host-built constants of one geometry: the padded-position mask and the shift masks per chunk. */
export interface MaterialisedConstants {
  /** Identifies the geometry (shape, window, shift, heads, dtype, chunking) the constants are for. */
  readonly key: string;
  readonly windowsPerChunk: number;
  /** Score chunks per batch item (1 when the scores fit in one binding). */
  readonly chunks: number;
  /** Bytes of one full [B·nW, heads, n, n] score tensor. */
  readonly scoreBytes: number;
  /** [1, Dp, Hp, Wp, 1]: 1 at padded positions; null without padding. */
  readonly padMask: Tensor | null;
  /** Per chunk of windows: [g, 1, n, n] of 0 / −100; null when unshifted. */
  readonly masks: readonly Tensor[] | null;
  /** Bytes the constants hold on the GPU. */
  readonly bytes: number;
  dispose(): void;
}

interface Geometry {
  B: number;
  D: number;
  H: number;
  W: number;
  C: number;
  heads: number;
  hd: number;
  win: Vec3;
  shift: Vec3;
  cfg: Vec3;
  padded: Vec3;
  counts: Vec3;
  nW: number;
  n: number;
  shifted: boolean;
  dtype: DType;
}

function geometryOf(a: SeparateQkvArgs): Geometry {
  const { q, k, v, heads, window: win, shift } = a;
  const cfg = a.configuredWindow ?? [7, 7, 7];
  if (q.ndim !== 5) throw new ReefError(`materialisedWindowAttention3d: q ${q.describe()} must be [B, D, H, W, C]`);
  for (const t of [k, v]) {
    if (t.ndim !== 5 || t.shape.some((d, i) => d !== q.shape[i]) || t.dtype !== q.dtype) {
      throw new ReefError(`materialisedWindowAttention3d: ${t.describe()} must match q ${q.describe()}`);
    }
  }
  const [B, D, H, W, C] = q.shape as [number, number, number, number, number];
  if (!Number.isInteger(heads) || heads <= 0 || C % heads !== 0) throw new ReefError(`materialisedWindowAttention3d: ${C} channels do not split into ${heads} heads`);
  for (let i = 0; i < 3; i++) {
    if (!(win[i]! >= 1 && win[i]! <= cfg[i]!)) throw new ReefError(`materialisedWindowAttention3d: window [${win}] must lie within the configured [${cfg}]`);
    if (!(shift[i]! >= 0 && shift[i]! < win[i]!)) throw new ReefError(`materialisedWindowAttention3d: shift [${shift}] must be below the window [${win}]`);
  }
  const padded: Vec3 = [Math.ceil(D / win[0]) * win[0], Math.ceil(H / win[1]) * win[1], Math.ceil(W / win[2]) * win[2]];
  const counts: Vec3 = [padded[0] / win[0], padded[1] / win[1], padded[2] / win[2]];
  return {
    B, D, H, W, C, heads, hd: C / heads, win, shift, cfg, padded, counts,
    nW: counts[0] * counts[1] * counts[2],
    n: win[0] * win[1] * win[2],
    shifted: shift.some((s) => s > 0),
    dtype: q.dtype,
  };
}

const keyOf = (g: Geometry, perChunk: number) =>
  `${g.dtype} [${g.B},${g.D},${g.H},${g.W},${g.C}] heads ${g.heads} window [${g.win}] shift [${g.shift}] chunk ${perChunk}`;

/** Windows per score chunk: as many as keep one [g, heads, n, n] tensor within a storage binding. */
export function defaultWindowsPerChunk(rt: Runtime, a: SeparateQkvArgs): number {
  const g = geometryOf(a);
  const limit = Math.min(rt.caps.maxStorageBufferBindingSize, rt.caps.maxBufferSize);
  const perWindow = g.heads * g.n * g.n * BYTES_PER_ELEMENT[g.dtype];
  const byWorkgroups = Math.floor(rt.caps.maxWorkgroupsPerDimension / g.heads); // matmul batch per dispatch
  return Math.max(1, Math.min(g.nW, Math.floor(limit / perWindow), byWorkgroups));
}

/** Builds the geometry constants once (e.g. outside a timed loop); the caller disposes them. */
export function materialisedConstants(a: MaterialisedAttentionArgs): MaterialisedConstants {
  const g = geometryOf(a);
  const rt = a.q.rt;
  const perChunk = Math.max(1, Math.min(g.nW, a.windowsPerChunk ?? defaultWindowsPerChunk(rt, a)));
  const chunks = Math.ceil(g.nW / perChunk);
  const [Dp, Hp, Wp] = g.padded;
  const owned: Tensor[] = [];
  let padMask: Tensor | null = null;
  if (Dp !== g.D || Hp !== g.H || Wp !== g.W) {
    const m = new Float32Array(Dp * Hp * Wp);
    for (let d = 0; d < Dp; d++)
      for (let h = 0; h < Hp; h++)
        for (let w = 0; w < Wp; w++) m[(d * Hp + h) * Wp + w] = d >= g.D || h >= g.H || w >= g.W ? 1 : 0;
    padMask = tensor(rt, m, [1, Dp, Hp, Wp, 1], { dtype: g.dtype, name: 'pad_mask' });
    owned.push(padMask);
  }
  let masks: Tensor[] | null = null;
  if (g.shifted) {
    // MONAI compute_mask: region labels of the rolled padded volume, partitioned into windows;
    // −100 between tokens of different regions.
    const labels = shiftRegionLabels(g.padded, g.win, g.shift);
    const [wd, wh, ww] = g.win;
    const [, nh, nw] = g.counts;
    const n = g.n;
    const lab = new Uint8Array(n);
    masks = [];
    for (let c = 0; c < chunks; c++) {
      const w0 = c * perChunk;
      const w1 = Math.min(g.nW, w0 + perChunk);
      const data = new Float32Array((w1 - w0) * n * n);
      for (let wi = w0; wi < w1; wi++) {
        const [oz, oy, ox] = [Math.floor(wi / (nh * nw)) * wd, (Math.floor(wi / nw) % nh) * wh, (wi % nw) * ww];
        for (let t = 0; t < n; t++) {
          const z = oz + Math.floor(t / (wh * ww));
          const y = oy + (Math.floor(t / ww) % wh);
          const x = ox + (t % ww);
          lab[t] = labels[(z * Hp + y) * Wp + x]!;
        }
        const base = (wi - w0) * n * n;
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (lab[i] !== lab[j]) data[base + i * n + j] = -100;
      }
      const t = tensor(rt, data, [w1 - w0, 1, n, n], { dtype: g.dtype, name: 'shift_mask' });
      masks.push(t);
      owned.push(t);
    }
  }
  return {
    key: keyOf(g, perChunk),
    windowsPerChunk: perChunk,
    chunks,
    scoreBytes: g.B * g.nW * g.heads * g.n * g.n * BYTES_PER_ELEMENT[g.dtype],
    padMask,
    masks,
    bytes: owned.reduce((s, t) => s + t.byteSize, 0),
    dispose: () => owned.forEach((t) => t.dispose()),
  };
}

/** [0, n) tokens of the configured window grid (row-major) as at most three regular boxes. */
function tokenBlocks(n: number, cfg: Vec3): { start: number; origin: Vec3; extent: Vec3 }[] {
  const plane = cfg[1] * cfg[2];
  const P = Math.floor(n / plane);
  const R = Math.floor((n - P * plane) / cfg[2]);
  const X = n - P * plane - R * cfg[2];
  const out: { start: number; origin: Vec3; extent: Vec3 }[] = [];
  if (P > 0) out.push({ start: 0, origin: [0, 0, 0], extent: [P, cfg[1], cfg[2]] });
  if (R > 0) out.push({ start: P * plane, origin: [P, 0, 0], extent: [1, R, cfg[2]] });
  if (X > 0) out.push({ start: P * plane + R * cfg[2], origin: [P, R, 0], extent: [1, 1, X] });
  return out;
}

/**
 * bias[h, i, j] = table[index[i, j], h] with MONAI's index of the configured window sliced to
 * [:n, :n]: index = (Δz+cz−1)(2cy−1)(2cx−1) + (Δy+cy−1)(2cx−1) + (Δx+cx−1) over the configured-grid
 * coordinates of tokens i and j, so each pair of token boxes is one strided copy whose j strides are
 * negative (written modulo 2³², which WGSL's u32 arithmetic wraps back). Not recorded on the tape.
 */
export function gatherRelativeBias(table: Tensor, heads: number, win: Vec3, cfg: Vec3): Tensor {
  const n = win[0] * win[1] * win[2];
  const Sy = 2 * cfg[2] - 1;
  const Sz = (2 * cfg[1] - 1) * Sy;
  const neg = (s: number) => 2 ** 32 - s;
  const out = empty(table.rt, [heads, n, n], table.dtype, 'relative_bias');
  const blocks = tokenBlocks(n, cfg);
  const [cy, cx] = [cfg[1], cfg[2]];
  for (const bi of blocks) {
    for (const bj of blocks) {
      const row = (bi.origin[0] - bj.origin[0] + cfg[0] - 1) * Sz + (bi.origin[1] - bj.origin[1] + cy - 1) * Sy + (bi.origin[2] - bj.origin[2] + cx - 1);
      copyStrided(table, out, {
        shape: [heads, ...bi.extent, ...bj.extent],
        inOffset: row * heads,
        inStride: [1, Sz * heads, Sy * heads, heads, neg(Sz * heads), neg(Sy * heads), neg(heads)],
        outOffset: bi.start * n + bj.start,
        outStride: [n * n, cy * cx * n, cx * n, n, cy * cx, cx, 1],
      });
    }
  }
  return out;
}

/** torch.roll(x, s, axis): out[p] = x[(p − s) mod N]. */
function roll(x: Tensor, s: number, axis: number): Tensor {
  const N = x.shape[axis]!;
  const r = ((s % N) + N) % N;
  if (r === 0) return x;
  const ends = [...x.shape];
  const head = slice(x, x.shape.map((_, i) => (i === axis ? N - r : 0)), ends);
  const tail = slice(x, x.shape.map(() => 0), ends.map((e, i) => (i === axis ? N - r : e)));
  const out = concat([head, tail], axis);
  head.dispose();
  tail.dispose();
  return out;
}

/** Replaces `x` by f(x), freeing x (unless f returned it). */
function step(x: Tensor, f: (t: Tensor) => Tensor): Tensor {
  const y = f(x);
  if (y !== x) x.dispose();
  return y;
}

/** MONAI's window attention with every intermediate materialised; same arguments as windowAttention3d. */
export function materialisedWindowAttention3d(a: MaterialisedAttentionArgs): Tensor {
  const g = geometryOf(a);
  const { qkvBias, table } = a;
  const { B, D, H, W, C, heads, hd, n, nW, win } = g;
  const [Dp, Hp, Wp] = g.padded;
  const [nd, nh, nw] = g.counts;
  if (qkvBias.ndim !== 1 || qkvBias.shape[0] !== 3 * C || qkvBias.dtype !== g.dtype) throw new ReefError(`materialisedWindowAttention3d: qkvBias ${qkvBias.describe()} must be ${g.dtype}[${3 * C}]`);
  const tableRows = (2 * g.cfg[0] - 1) * (2 * g.cfg[1] - 1) * (2 * g.cfg[2] - 1);
  if (table.ndim !== 2 || table.shape[0] !== tableRows || table.shape[1] !== heads || table.dtype !== g.dtype) {
    throw new ReefError(`materialisedWindowAttention3d: table ${table.describe()} must be ${g.dtype}[${tableRows}, ${heads}]`);
  }
  const own = a.constants ? null : materialisedConstants(a);
  const k = a.constants ?? own!;
  const perChunk = k.windowsPerChunk;
  if (k.key !== keyOf(g, perChunk)) throw new ReefError(`materialisedWindowAttention3d: constants are for ${k.key}, not ${keyOf(g, perChunk)}`);
  try {
    return tidy(() => {
      // Pad, roll and partition q, k, v into [B·nW, heads, n, hd].
      const windows = (x: Tensor, part: number): Tensor => {
        let t = x; // the caller's tensor is never freed here
        const then = (f: (u: Tensor) => Tensor) => {
          const y = f(t);
          if (t !== x && y !== t) t.dispose();
          t = y;
        };
        if (k.padMask) {
          then((u) => padEnd(u, [0, Dp - D, Hp - H, Wp - W, 0]));
          const b = slice(qkvBias, [part * C], [(part + 1) * C]);
          const where = mul(k.padMask, b); // the bias at padded positions, 0 elsewhere
          b.dispose();
          then((u) => add(u, where));
          where.dispose();
        }
        for (let ax = 0; ax < 3; ax++) if (g.shift[ax]) then((u) => roll(u, -g.shift[ax]!, ax + 1));
        then((u) => reshape(u, [B * nd, win[0], nh, win[1], nw, win[2], heads, hd]));
        then((u) => permute(u, [0, 2, 4, 6, 1, 3, 5, 7])); // [B·nd, nh, nw, heads, wd, wh, ww, hd]
        then((u) => reshape(u, [B * nW, heads, n, hd]));
        return t;
      };
      const qw = step(windows(a.q, 0), (t) => scale(t, hd ** -0.5));
      const kw = windows(a.k, 1);
      const vw = windows(a.v, 2);
      const bias = gatherRelativeBias(table, heads, win, g.cfg);
      const outs: Tensor[] = [];
      const single = k.chunks === 1 && B === 1;
      for (let b = 0; b < B; b++) {
        for (let c = 0; c < k.chunks; c++) {
          const w0 = b * nW + c * perChunk;
          const w1 = b * nW + Math.min(nW, (c + 1) * perChunk);
          const cut = (t: Tensor) => (single ? t : slice(t, [w0, 0, 0, 0], [w1, heads, n, hd]));
          const qc = cut(qw);
          const kc = cut(kw);
          let s = matmul(qc, kc, { transB: true }); // [g, heads, n, n]
          if (!single) {
            qc.dispose();
            kc.dispose();
          }
          s = step(s, (t) => add(t, bias));
          const mask = k.masks?.[c];
          if (mask) s = step(s, (t) => add(t, mask));
          s = step(s, (t) => softmax(t));
          const vc = cut(vw);
          outs.push(matmul(s, vc));
          s.dispose();
          if (!single) vc.dispose();
        }
      }
      for (const t of [qw, kw, vw, bias]) t.dispose();
      // [B·nW, heads, n, hd] → [B, Dp, Hp, Wp, C], roll back, crop.
      let o = outs.length === 1 ? outs[0]! : concat(outs, 0);
      if (outs.length > 1) outs.forEach((t) => t.dispose());
      o = step(o, (t) => reshape(t, [B * nd, nh, nw, heads, win[0], win[1], win[2], hd]));
      o = step(o, (t) => permute(t, [0, 4, 1, 5, 2, 6, 3, 7])); // [B·nd, wd, nh, wh, nw, ww, heads, hd]
      o = step(o, (t) => reshape(t, [B, Dp, Hp, Wp, C]));
      for (let ax = 0; ax < 3; ax++) if (g.shift[ax]) o = step(o, (t) => roll(t, g.shift[ax]!, ax + 1));
      if (Dp !== D || Hp !== H || Wp !== W) o = step(o, (t) => slice(t, [0, 0, 0, 0, 0], [B, D, H, W, C]));
      return o;
    });
  } finally {
    own?.dispose();
  }
}
