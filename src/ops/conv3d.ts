/**
 * 3D convolution, stride 1, zero padding (default k // 2: "same" for odd k), no bias, channels-first
 * as in MONAI's UnetResBlock:
 *
 *   x: [B, Ci, D, H, W]   weight: [Co, Ci, k, k, k] (PyTorch layout)   out: [B, Co, D', H', W']
 *   D' = D + 2·padding − k + 1 (likewise H', W')
 *
 * Forward and both gradients are implicit GEMMs (the k³ neighbourhoods are gathered inside the
 * kernel, never materialised): forward C[B·D'H'W', Co] over K = Ci·k³, dx the same kernel on dy
 * with the flipped, transposed weights over K = Co·k³, and dW[Co, Ci·k³] as partial sums over fixed
 * chunks of positions added in a fixed order (bitwise deterministic). Variants (`conv3dVariant`):
 *  - gemm (shaders/conv3d.wgsl, GPUs): register blocks of positions × 8 channels; maps of at most
 *    32 positions use `_narrow` entries with lanes over channels; tensors over the binding limit
 *    are bound in pieces.
 *  - rows, rows-sg (shaders/conv3d_rows*.wgsl, CPU adapters): a lane owns a run of outputs along W
 *    and 12 output channels as vec4s, the weights rearranged once per call to [Ci, k³, Co]; rows-sg
 *    hands values every lane needs (weights; dy in dW) round a subgroup instead of loading them
 *    lane by lane, which is what a CPU adapter pays most for. At the tiny step's shapes on
 *    lavapipe: conv3d 6.8 s → 1.2 s of GPU time per step (kernels-bench/conv3d.ts).
 */
import code from '../../shaders/conv3d.wgsl';
import rowsCode from '../../shaders/conv3d_rows.wgsl';
import rowsSgCode from '../../shaders/conv3d_rows_sg.wgsl';
import type { KernelKey, ShaderFile } from '../gpu/kernel.js';
import type { BufferSlice, DispatchCall, Runtime } from '../gpu/runtime.js';
import type { Work } from '../gpu/profiler.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { bindRange, overBindingLimit } from './binding-range.js';
import { copyStrided } from './shape.js';
import { zeros } from '../tensor/fill.js';
import { grid1d } from './geometry.js';

export const CONV3D: ShaderFile = { name: 'conv3d', code };
export const CONV3D_ROWS: ShaderFile = { name: 'conv3d_rows', code: rowsCode };
export const CONV3D_ROWS_SG: ShaderFile = { name: 'conv3d_rows_sg', code: rowsSgCode };

/**
 * Kernels: `gemm` (shaders/conv3d.wgsl, register-blocked implicit GEMMs, the GPU path) or `rows`
 * (shaders/conv3d_rows.wgsl: runs along W × vec4s of channels, for CPU adapters).
 */
export const CONV3D_VARIANTS = ['gemm', 'rows', 'rows-sg'] as const;
export type Conv3dVariant = (typeof CONV3D_VARIANTS)[number];

export interface Conv3dOptions {
  /** Zero padding before and after each spatial axis, 0 ≤ padding < k (default ⌊k/2⌋). */
  padding?: number;
  /** Kernels; default per adapter and shape (REEF_CONV3D overrides). */
  variant?: Conv3dVariant;
  /** rows / rows-sg tile constants replacing the plan's (for benchmark sweeps). */
  rowsTiles?: RowsTiles;
}

/** Invocations per workgroup, and what one workgroup covers. */
const WG = 64;
const TM = 4; // output positions per invocation (forward, dx)
const TJ = 4; // dW columns (ci, tap) per invocation
/** dW partial sums: at least this many positions per chunk of M, and at most this many chunks. */
const MIN_CHUNK = 1024;
const MAX_CHUNKS = 64;
/** Up to this many output positions, forward and dx run the `_narrow` entries (lanes over channels). */
const NARROW_MAX_POSITIONS = 32;

export interface Conv3dPlan {
  /** Output channels per workgroup of the forward/dx GEMM (TN) and of the dW GEMM (TC). */
  tn: number;
  tc: number;
}

/** Channel tiles: a full 8 where there are more than 4 channels, else 4 (less padding waste). */
export function planConv3d(_rt: Runtime, channelsOut: number): Conv3dPlan {
  const t = channelsOut > 4 ? 8 : 4;
  return { tn: t, tc: t };
}

interface Dims {
  B: number;
  Ci: number;
  Co: number;
  k: number;
  pad: number;
  in: [number, number, number];
  out: [number, number, number];
}

function dims(x: Tensor, weight: Tensor, opts: Conv3dOptions): Dims {
  const fail = (why: string): never => {
    throw new ReefError(`conv3d: input ${x.describe()}, weight ${weight.describe()}: ${why}`);
  };
  if (x.ndim !== 5) fail('the input must be channels-first [B, Ci, D, H, W]');
  if (weight.ndim !== 5) fail('the weight must be [Co, Ci, k, k, k]');
  if (x.dtype !== weight.dtype) fail('element types differ');
  const [B, Ci, D, H, W] = x.shape as [number, number, number, number, number];
  const [Co, Cw, k, k1, k2] = weight.shape as [number, number, number, number, number];
  if (k !== k1 || k !== k2) fail('the kernel must be cubic (k × k × k)');
  if (Cw !== Ci) fail(`the weight takes ${Cw} input channels, the input has ${Ci}`);
  if (x.size === 0 || weight.size === 0) fail('empty tensors are not supported');
  const pad = opts.padding ?? Math.floor(k / 2);
  if (!Number.isInteger(pad) || pad < 0 || pad >= k) fail(`padding ${pad} must be an integer in [0, ${k - 1}]`);
  const out = [D, H, W].map((n) => n + 2 * pad - k + 1) as [number, number, number];
  if (out.some((n) => n < 1)) fail(`a ${k}³ kernel with padding ${pad} leaves no output positions`);
  return { B, Ci, Co, k, pad, in: [D, H, W], out };
}

/** Uniform values of one GEMM; every entry point takes the whole struct. */
function params(d: Dims, CR: number, NO: number, src: readonly number[], dst: readonly number[], pad: number, extra: Partial<Record<'mChunk' | 'chunks' | 'total', number>> = {}) {
  return {
    CR,
    NO,
    ID: src[0]!,
    IH: src[1]!,
    IW: src[2]!,
    OD: dst[0]!,
    OH: dst[1]!,
    OW: dst[2]!,
    PAD: pad,
    M: d.B * dst[0]! * dst[1]! * dst[2]!,
    mChunk: extra.mChunk ?? 0,
    chunks: extra.chunks ?? 0,
    total: extra.total ?? 0,
    t0x: 0,
    t0y: 0,
    t0z: 0,
    srcOff: 0,
    srcBatch: 0,
    dstOff: 0,
    dstBatch: 0,
    wOff: 0,
    wStepN: 0,
    wStepC: 0,
    accumulate: 0,
    gradOff: 0,
    gradBatch: 0,
  };
}

/**
 * Dispatches a grid of tiles that may exceed the per-dimension limit: one dispatch per block of
 * at most maxWorkgroupsPerDimension tiles in each dimension, told its first tile (t0x, t0y, t0z).
 */
function dispatchTiles(rt: Runtime, kernel: KernelKey, buffers: DispatchCall['buffers'], p: ReturnType<typeof params>, tiles: [number, number, number], work: Work): void {
  const max = rt.caps.maxWorkgroupsPerDimension;
  const total = tiles[0] * tiles[1] * tiles[2];
  for (let z = 0; z < tiles[2]; z += max) {
    for (let y = 0; y < tiles[1]; y += max) {
      for (let x = 0; x < tiles[0]; x += max) {
        const wg: [number, number, number] = [Math.min(max, tiles[0] - x), Math.min(max, tiles[1] - y), Math.min(max, tiles[2] - z)];
        const share = (wg[0] * wg[1] * wg[2]) / total;
        rt.dispatch({
          kernel,
          buffers,
          params: { ...p, t0x: x, t0y: y, t0z: z },
          workgroups: wg,
          work: { flops: share * (work.flops ?? 0), bytes: share * (work.bytes ?? 0) },
        });
      }
    }
  }
}

/**
 * forward (src = x) or backward_input (src = dy): dst[B, NO, dstVol] from src[B, CR, srcVol].
 * Tensors over the adapter's maxStorageBufferBindingSize (coralbay-h's 3072→3072 weights are 1 GB)
 * are bound in pieces: per batch element, blocks of output channels × blocks of reduction channels,
 * the later reduction blocks adding to dst in a fixed order.
 */
function convGemm(entry: 'forward' | 'backward_input', src: Tensor, weight: Tensor, dst: Tensor, d: Dims, CR: number, NO: number, srcVol: readonly number[], dstVol: readonly number[], pad: number): void {
  const rt = src.rt;
  const flip = entry === 'backward_input';
  const plan = planConv3d(rt, NO);
  const KK = d.k ** 3;
  const IS = srcVol[0]! * srcVol[1]! * srcVol[2]!;
  const OS = dstVol[0]! * dstVol[1]! * dstVol[2]!;
  // weight (n, c) strides: forward weight[n, c, tap], backward_input weight[c, n, KK − 1 − tap].
  const wStepN = flip ? KK : CR * KK;
  const wStepC = flip ? NO * KK : KK;
  const M = d.B * OS;
  const narrow = M <= NARROW_MAX_POSITIONS;
  const kernel: KernelKey = { shader: CONV3D, entry: narrow ? `${entry}_narrow` : entry, elem: src.dtype, consts: { KS: d.k, WG, TM, TN: plan.tn } };
  const E = BYTES_PER_ELEMENT[src.dtype];
  const limit = rt.caps.maxStorageBufferBindingSize;
  const run = (p: ReturnType<typeof params>, buffers: DispatchCall['buffers'], nCount: number, cCount: number, M: number) =>
    dispatchTiles(rt, kernel, buffers, p, narrow ? [M, Math.ceil(nCount / WG), 1] : [Math.ceil(M / (WG * TM)), Math.ceil(nCount / plan.tn), 1], {
      flops: 2 * M * nCount * cCount * KK,
      bytes: E * ((M / OS) * (cCount * IS + nCount * OS) + nCount * cCount * KK),
    });
  const base = { ...params(d, CR, NO, srcVol, dstVol, pad), srcBatch: CR * IS, dstBatch: NO * OS, wStepN, wStepC };
  if (Math.max(src.size, weight.size, dst.size) * E <= limit) {
    run(base, { src: src.buffer, weight: weight.buffer, dst: dst.buffer }, NO, CR, base.M);
    return;
  }
  const room = limit - rt.caps.minStorageBufferOffsetAlignment; // a piece's range starts up to one alignment before its first element
  // Channels per piece: the weight rows a piece binds run over the whole other channel axis.
  const nPer = Math.min(NO, Math.floor(room / (OS * E)), flip ? NO : Math.floor(room / (CR * KK * E)));
  const cPer = Math.min(CR, Math.floor(room / (IS * E)), flip ? Math.floor(room / (NO * KK * E)) : CR);
  if (nPer < 1 || cPer < 1) {
    throw new ReefError(`conv3d ${src.describe()} · ${weight.describe()}: one channel of it does not fit a storage binding of ${limit} bytes (the adapter's maxStorageBufferBindingSize)`);
  }
  const nStep = nPer >= plan.tn ? nPer - (nPer % plan.tn) : nPer;
  for (let b = 0; b < d.B; b++) {
    for (let n0 = 0; n0 < NO; n0 += nStep) {
      const nCount = Math.min(nStep, NO - n0);
      const out = bindRange(dst, (b * NO + n0) * OS, (b * NO + n0 + nCount) * OS);
      for (let c0 = 0; c0 < CR; c0 += cPer) {
        const cCount = Math.min(cPer, CR - c0);
        const input = bindRange(src, (b * CR + c0) * IS, (b * CR + c0 + cCount) * IS);
        const w = flip
          ? bindRange(weight, c0 * NO * KK + n0 * KK, (c0 + cCount - 1) * NO * KK + (n0 + nCount) * KK)
          : bindRange(weight, n0 * CR * KK + c0 * KK, (n0 + nCount - 1) * CR * KK + (c0 + cCount) * KK);
        const p = { ...base, CR: cCount, NO: nCount, M: OS, srcOff: input.offset, dstOff: out.offset, wOff: w.offset, accumulate: c0 > 0 ? 1 : 0 };
        run(p, { src: input.slice, weight: w.slice, dst: out.slice }, nCount, cCount, OS);
      }
    }
  }
}

/**
 * dW[Co, Ci, k, k, k] = dyᵀ · A(x): partial sums per chunk of positions, then a fixed-order sum.
 * When x, dy or the partial sums exceed the binding limit: per batch element, blocks of output ×
 * input channels, each block's dW added into place in a fixed order.
 */
function weightGrad(x: Tensor, dy: Tensor, d: Dims, dtype: Tensor['dtype']): Tensor {
  const rt = x.rt;
  const IS = d.in[0] * d.in[1] * d.in[2];
  const OS = d.out[0] * d.out[1] * d.out[2];
  const KK = d.k ** 3;
  const M = d.B * OS;
  const chunksFor = (m: number) => Math.max(1, Math.min(MAX_CHUNKS, Math.floor(m / MIN_CHUNK)));
  const E = BYTES_PER_ELEMENT[x.dtype];
  if (!overBindingLimit(rt, x.size * E, dy.size * E, 4 * chunksFor(M) * d.Co * d.Ci * KK)) {
    const dw = empty(rt, [d.Co, d.Ci, d.k, d.k, d.k], dtype, 'conv3d_dw');
    try {
      weightGradBlock(x.buffer, dy.buffer, dw, d, d.B, d.Ci, d.Co, { srcOff: 0, srcBatch: d.Ci * IS, gradOff: 0, gradBatch: d.Co * OS });
    } catch (e) {
      dw.dispose();
      throw e;
    }
    return dw;
  }
  const room = rt.caps.maxStorageBufferBindingSize - rt.caps.minStorageBufferOffsetAlignment;
  const chunks = chunksFor(OS);
  let cPer = Math.min(d.Ci, Math.floor(room / (IS * E)));
  let nPer = Math.min(d.Co, Math.floor(room / (OS * E)));
  while (cPer > 1 && nPer > 1 && 4 * chunks * nPer * cPer * KK > room) {
    if (nPer >= cPer) nPer = Math.ceil(nPer / 2);
    else cPer = Math.ceil(cPer / 2);
  }
  if (cPer < 1 || nPer < 1 || 4 * chunks * nPer * cPer * KK > room) {
    throw new ReefError(`conv3d weight gradient ${x.describe()}, ${dy.describe()}: one channel does not fit a storage binding of ${rt.caps.maxStorageBufferBindingSize} bytes`);
  }
  const dw = zeros(rt, [d.Co, d.Ci, d.k, d.k, d.k], { dtype });
  try {
    const J = d.Ci * KK;
    for (let b = 0; b < d.B; b++) {
      for (let n0 = 0; n0 < d.Co; n0 += nPer) {
        const nc = Math.min(nPer, d.Co - n0);
        const grad = bindRange(dy, (b * d.Co + n0) * OS, (b * d.Co + n0 + nc) * OS);
        for (let c0 = 0; c0 < d.Ci; c0 += cPer) {
          const cc = Math.min(cPer, d.Ci - c0);
          const src = bindRange(x, (b * d.Ci + c0) * IS, (b * d.Ci + c0 + cc) * IS);
          const block = empty(rt, [nc, cc, d.k, d.k, d.k], dtype, 'conv3d_dw_block');
          try {
            weightGradBlock(src.slice, grad.slice, block, d, 1, cc, nc, { srcOff: src.offset, srcBatch: 0, gradOff: grad.offset, gradBatch: 0 });
            copyStrided(block, dw, { shape: [nc, cc * KK], inStride: [cc * KK, 1], outOffset: n0 * J + c0 * KK, outStride: [J, 1], accumulate: true });
          } finally {
            block.dispose();
          }
        }
      }
    }
  } catch (e) {
    dw.dispose();
    throw e;
  }
  return dw;
}

/** One dW GEMM: dw[NO, CR·KK] from src = x [B, CR, in] and grad = dy [B, NO, out] (whole or pieces). */
function weightGradBlock(
  src: GPUBuffer | BufferSlice,
  grad: GPUBuffer | BufferSlice,
  dw: Tensor,
  d: Dims,
  B: number,
  CR: number,
  NO: number,
  offsets: { srcOff: number; srcBatch: number; gradOff: number; gradBatch: number },
): void {
  const rt = dw.rt;
  const plan = planConv3d(rt, NO);
  const OS = d.out[0] * d.out[1] * d.out[2];
  const M = B * OS;
  const chunks = Math.max(1, Math.min(MAX_CHUNKS, Math.floor(M / MIN_CHUNK)));
  const mChunk = Math.ceil(M / chunks);
  const J = CR * d.k ** 3;
  const total = NO * J;
  const p = { ...params({ ...d, B }, CR, NO, d.in, d.out, d.pad, { mChunk, chunks, total }), ...offsets };
  const consts = { KS: d.k, WG, TJ, TC: plan.tc };
  const partial = empty(rt, [chunks, NO, J], 'f32', 'conv3d_dw_partial');
  try {
    dispatchTiles(rt, { shader: CONV3D, entry: 'backward_weight', elem: dw.dtype, consts }, { src, grad, partial: partial.buffer }, p, [Math.ceil(J / (WG * TJ)), Math.ceil(NO / plan.tc), chunks], {
      flops: 2 * M * total,
      bytes: BYTES_PER_ELEMENT[dw.dtype] * (B * CR * d.in[0] * d.in[1] * d.in[2] + M * NO) + 4 * partial.size,
    });
    // One invocation per element; t0x is the first element of each dispatch.
    const max = rt.caps.maxWorkgroupsPerDimension;
    const perDispatch = WG * max ** 3;
    for (let e0 = 0; e0 < total; e0 += perDispatch) {
      const n = Math.min(perDispatch, total - e0);
      rt.dispatch({
        kernel: { shader: CONV3D, entry: 'sum_chunks', elem: dw.dtype, consts },
        buffers: { parts: partial.buffer, dw: dw.buffer },
        params: { ...p, t0x: e0 },
        workgroups: grid1d(n, WG, max),
        work: { flops: chunks * n, bytes: (4 * chunks + BYTES_PER_ELEMENT[dw.dtype]) * n },
      });
    }
  } finally {
    partial.dispose();
  }
}

/**
 * Outputs along W per lane (forward, dx), measured on lavapipe at the tiny step's shapes: rows-sg
 * is fastest at 4 (2, 8 and 16 slower, 32 far slower), rows without subgroups at 8.
 */
const ROWS_TW: Record<'rows' | 'rows-sg', number> = { rows: 8, 'rows-sg': 4 };
/** rows dW: aim for at least this many lanes (chunks of output rows × (ci, kd) × channel groups). */
const ROWS_DW_LANES = 2048;
const ROWS_DW_MAX_CHUNKS = 256;

/**
 * vec4 groups of output channels per lane: 3 (12 channels; on lavapipe 4 and 2 measured slower
 * at every tiny-step shape, 4 much slower in dW), fewer where there are at most 8 channels.
 */
export function rowsGroups(NO: number): { V: number; NG: number } {
  const V = NO <= 8 ? Math.ceil(NO / 4) : 3;
  return { V, NG: Math.ceil(NO / (4 * V)) };
}

/** The adapter's subgroup size where rows-sg can use it (fixed, a power of two dividing the workgroup), else 0. */
export function rowsSubgroupSize(rt: Runtime): number {
  const { subgroups, subgroupMinSize: lo, subgroupMaxSize: hi } = rt.caps;
  return subgroups && lo === hi && lo >= 4 && lo <= WG && (lo & (lo - 1)) === 0 ? lo : 0;
}

type ConvDims = { B: number; Ci: number; Co: number; k: number; in: readonly number[]; out: readonly number[] };

/**
 * The kernels a call uses: `requested`, else REEF_CONV3D, else on CPU adapters `rows-sg` (or
 * `rows` without fixed-size subgroups), else `gemm`. The rows kernels need every tensor within one
 * binding (they do not bind in pieces) and by default leave the few-position maps to gemm's narrow
 * entries; rows-sg falls back to rows where the adapter has no usable subgroups.
 */
export function conv3dVariant(rt: Runtime, d: ConvDims, requested?: Conv3dVariant): Conv3dVariant {
  const forced = rt.host.env('REEF_CONV3D') || undefined;
  if (forced !== undefined && !CONV3D_VARIANTS.includes(forced as Conv3dVariant)) {
    throw new ReefError(`REEF_CONV3D=${forced}: expected one of ${CONV3D_VARIANTS.join(', ')}`);
  }
  const chosen = requested ?? (forced as Conv3dVariant | undefined);
  const want = chosen ?? (rt.caps.isCpu ? 'rows-sg' : 'gemm');
  if (want === 'gemm') return 'gemm';
  const IS = d.in[0]! * d.in[1]! * d.in[2]!;
  const OS = d.out[0]! * d.out[1]! * d.out[2]!;
  const KK = d.k ** 3;
  const biggest = 4 * Math.max(d.B * d.Ci * IS, d.B * d.Co * OS, d.Ci * KK * 4 * rowsGroups(d.Co).NG * rowsGroups(d.Co).V, d.Co * KK * 4 * rowsGroups(d.Ci).NG * rowsGroups(d.Ci).V, rowsDwChunks(d) * d.Co * d.Ci * KK);
  if (biggest > rt.caps.maxStorageBufferBindingSize) return 'gemm';
  if (chosen === undefined && d.B * OS <= NARROW_MAX_POSITIONS) return 'gemm';
  return want === 'rows-sg' && rowsSubgroupSize(rt) === 0 ? 'rows' : want;
}

/** rows dW: chunks of the B·OD·OH output rows. */
function rowsDwChunks(d: ConvDims): number {
  const rows = d.B * d.out[0]! * d.out[1]!;
  const lanes = d.Ci * d.k * rowsGroups(d.Co).NG;
  return Math.max(1, Math.min(rows, ROWS_DW_MAX_CHUNKS, Math.ceil(ROWS_DW_LANES / lanes)));
}

function rowsParams(d: Dims, CR: number, NO: number, NG: number, src: readonly number[], dst: readonly number[], pad: number, tw: number) {
  return {
    CR,
    NO,
    NG,
    ID: src[0]!,
    IH: src[1]!,
    IW: src[2]!,
    OD: dst[0]!,
    OH: dst[1]!,
    OW: dst[2]!,
    PAD: pad,
    rows: d.B * dst[0]! * dst[1]!,
    segs: Math.ceil(dst[2]! / tw),
    t0x: 0,
    total: 0,
    wStepN: 0,
    wStepC: 0,
    flip: 0,
    chunks: 0,
    rowsPerChunk: 0,
  };
}

/** One-dimensional work of n lanes on x·y·z grids, as many dispatches as the grid limit needs; t0x is each one's first element. */
function dispatchFlat(rt: Runtime, kernel: KernelKey, buffers: DispatchCall['buffers'], p: Record<string, number>, n: number, work: Work): void {
  const max = rt.caps.maxWorkgroupsPerDimension;
  const per = WG * max ** 3;
  for (let e0 = 0; e0 < n; e0 += per) {
    const count = Math.min(per, n - e0);
    const share = count / n;
    rt.dispatch({ kernel, buffers, params: { ...p, t0x: e0 }, workgroups: grid1d(count, WG, max), work: { flops: share * (work.flops ?? 0), bytes: share * (work.bytes ?? 0) } });
  }
}

/** Tile constants replacing the rows plan's (for benchmark sweeps). */
export interface RowsTiles {
  TW?: number;
  V?: number;
}

/** forward (src = x) or backward_input (src = dy) with the rows kernels: weights rearranged, then one pass. */
function convRows(variant: 'rows' | 'rows-sg', tiles: RowsTiles, entry: 'forward' | 'backward_input', src: Tensor, weight: Tensor, dst: Tensor, d: Dims, CR: number, NO: number, srcVol: readonly number[], dstVol: readonly number[], pad: number): void {
  const rt = src.rt;
  const flip = entry === 'backward_input';
  const KK = d.k ** 3;
  const V = tiles.V ?? rowsGroups(NO).V;
  const NG = Math.ceil(NO / (4 * V));
  const TW = tiles.TW ?? ROWS_TW[variant];
  const SG = rowsSubgroupSize(rt);
  const consts = { KS: d.k, WG, TW, V };
  const E = BYTES_PER_ELEMENT[src.dtype];
  const base = rowsParams(d, CR, NO, NG, srcVol, dstVol, pad, TW);
  const wT = empty(rt, [CR * KK * NG * V * 4], src.dtype, 'conv3d_rows_weight');
  try {
    const total = CR * KK * NG * V;
    dispatchFlat(rt, { shader: CONV3D_ROWS, entry: 'arrange_weight', elem: src.dtype, consts }, { weight: weight.buffer, wT: wT.buffer },
      { ...base, total, wStepN: flip ? KK : CR * KK, wStepC: flip ? NO * KK : KK, flip: flip ? 1 : 0 }, total, { bytes: E * (weight.size + wT.size) });
    const OS = dstVol[0]! * dstVol[1]! * dstVol[2]!;
    const IS = srcVol[0]! * srcVol[1]! * srcVol[2]!;
    const kernel: KernelKey = variant === 'rows-sg' ? { shader: CONV3D_ROWS_SG, entry, elem: src.dtype, consts: { ...consts, SG } } : { shader: CONV3D_ROWS, entry, elem: src.dtype, consts };
    const buffers: DispatchCall['buffers'] = variant === 'rows-sg' ? { src: src.buffer, wf: wT.buffer, dst: dst.buffer } : { src: src.buffer, wv: wT.buffer, dst: dst.buffer };
    const groups = Math.ceil((base.rows * base.segs) / WG);
    const max = rt.caps.maxWorkgroupsPerDimension;
    for (let x0 = 0; x0 < groups; x0 += max) {
      const n = Math.min(max, groups - x0);
      rt.dispatch({
        kernel,
        buffers,
        params: { ...base, t0x: x0 },
        workgroups: [n, NG, 1],
        work: { flops: (n / groups) * 2 * d.B * OS * NO * CR * KK, bytes: (n / groups) * E * (d.B * (CR * IS + NO * OS) + NO * CR * KK) },
      });
    }
  } finally {
    wT.dispose();
  }
}

/** dW with the rows kernels: per-chunk partial sums over output rows, then a fixed-order sum. */
function weightGradRows(variant: 'rows' | 'rows-sg', tiles: RowsTiles, x: Tensor, dy: Tensor, d: Dims, dtype: Tensor['dtype']): Tensor {
  const rt = x.rt;
  const KK = d.k ** 3;
  const V = tiles.V ?? rowsGroups(d.Co).V;
  const NG = Math.ceil(d.Co / (4 * V));
  const SG = rowsSubgroupSize(rt);
  const chunks = rowsDwChunks(d);
  const rows = d.B * d.out[0] * d.out[1];
  const consts = { KS: d.k, WG, TW: tiles.TW ?? ROWS_TW[variant], V };
  const p = { ...rowsParams(d, d.Ci, d.Co, NG, d.in, d.out, d.pad, 1), chunks, rowsPerChunk: Math.ceil(rows / chunks) };
  const total = d.Co * d.Ci * KK;
  const E = BYTES_PER_ELEMENT[x.dtype];
  const dw = empty(rt, [d.Co, d.Ci, d.k, d.k, d.k], dtype, 'conv3d_dw');
  const partial = empty(rt, [chunks, total], 'f32', 'conv3d_dw_partial');
  try {
    const work = { flops: 2 * d.B * d.out[0] * d.out[1] * d.out[2] * total, bytes: E * (x.size + dy.size) + 4 * partial.size };
    if (variant === 'rows-sg') {
      // Lanes of one (chunk, group) padded to whole subgroups.
      const lanes = Math.ceil((d.Ci * d.k) / SG) * SG * NG * chunks;
      dispatchFlat(rt, { shader: CONV3D_ROWS_SG, entry: 'backward_weight', elem: dtype, consts: { ...consts, SG } }, { src: x.buffer, grad: dy.buffer, partial: partial.buffer }, p, lanes, work);
    } else {
      dispatchFlat(rt, { shader: CONV3D_ROWS, entry: 'backward_weight', elem: dtype, consts }, { src: x.buffer, grad: dy.buffer, partial: partial.buffer }, p, d.Ci * d.k * NG * chunks, work);
    }
    dispatchFlat(rt, { shader: CONV3D_ROWS, entry: 'sum_chunks', elem: dtype, consts }, { parts: partial.buffer, dw: dw.buffer }, { ...p, total }, total, {
      flops: chunks * total,
      bytes: (4 * chunks + E) * total,
    });
  } catch (e) {
    dw.dispose();
    throw e;
  } finally {
    partial.dispose();
  }
  return dw;
}

export function conv3d(x: Tensor, weight: Tensor, opts: Conv3dOptions = {}): Tensor {
  const d = dims(x, weight, opts);
  const variant = conv3dVariant(x.rt, d, opts.variant);
  const tiles = opts.rowsTiles ?? {};
  const out = empty(x.rt, [d.B, d.Co, ...d.out], x.dtype, 'conv3d');
  try {
    if (variant === 'gemm') convGemm('forward', x, weight, out, d, d.Ci, d.Co, d.in, d.out, d.pad);
    else convRows(variant, tiles, 'forward', x, weight, out, d, d.Ci, d.Co, d.in, d.out, d.pad);
  } catch (e) {
    out.dispose();
    throw e;
  }
  return record(`conv3d(k=${d.k})`, out, [x, weight], [x, weight], (g, [xs, ws]) => {
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = empty(x.rt, x.shape, x.dtype, 'conv3d_dx');
      try {
        // dx = dy ⋆ flip(weight)ᵀ: the padding that maps output positions back onto input ones.
        if (variant === 'gemm') convGemm('backward_input', g, ws!, dx, d, d.Co, d.Ci, d.out, d.in, d.k - 1 - d.pad);
        else convRows(variant, tiles, 'backward_input', g, ws!, dx, d, d.Co, d.Ci, d.out, d.in, d.k - 1 - d.pad);
      } catch (e) {
        dx.dispose();
        throw e;
      }
    }
    const dw = weight.requiresGrad ? (variant === 'gemm' ? weightGrad(xs!, g, d, weight.dtype) : weightGradRows(variant, tiles, xs!, g, d, weight.dtype)) : null;
    return [dx, dw];
  });
}
