/**
 * Shape ops: reshape (shares the buffer), and permute, slice, concat and broadcast expansion, all
 * as one strided-copy kernel.
 */
import code from '../../shaders/copy_strided.wgsl';
import runsCode from '../../shaders/copy_strided_runs.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { zeros } from '../tensor/fill.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, numel, Tensor } from '../tensor/tensor.js';
import { broadcastStrides, contiguousStrides, grid1d, normalizeAxis, pack8, sameShape } from './geometry.js';
import { sumTo } from './reduce.js';
import { bindRange, overBindingLimit } from './binding-range.js';
import type { BufferSlice } from '../gpu/runtime.js';

export const COPY_STRIDED: ShaderFile = { name: 'copy_strided', code };
export const COPY_STRIDED_RUNS: ShaderFile = { name: 'copy_strided_runs', code: runsCode };

/**
 * Copy kernels: `strided` (one element per invocation, copy_strided.wgsl) or `runs` (runs of the
 * last axis per invocation, copy_strided_runs.wgsl: on CPU adapters, where per-element index
 * arithmetic costs more than the copy). Default per adapter; REEF_COPY overrides.
 */
export const COPY_VARIANTS = ['strided', 'runs'] as const;
export type CopyVariant = (typeof COPY_VARIANTS)[number];
/** Elements per invocation of the runs kernel (its RUN). */
const COPY_RUN = 8;

export function copyVariant(rt: Tensor['rt'], requested?: CopyVariant): CopyVariant {
  const forced = rt.host.env('REEF_COPY') || undefined;
  if (forced !== undefined && !COPY_VARIANTS.includes(forced as CopyVariant)) throw new ReefError(`REEF_COPY=${forced}: expected ${COPY_VARIANTS.join(' or ')}`);
  return requested ?? (forced as CopyVariant | undefined) ?? (rt.caps.isCpu ? 'runs' : 'strided');
}

export interface StridedCopy {
  shape: readonly number[];
  inOffset?: number;
  inStride: readonly number[];
  outOffset?: number;
  outStride: readonly number[];
  /** Add into dst rather than overwrite it. */
  accumulate?: boolean;
  /** Kernels; default per adapter (tests force each). */
  variant?: CopyVariant;
}

/**
 * The same copy over fewer axes: extent-1 axes dropped, and neighbours that are contiguous in both
 * layouts merged (a permute of [B, C, D, H, W] that keeps D, H, W together copies runs of D·H·W).
 */
export function simplifyCopy(shape: readonly number[], inStride: readonly number[], outStride: readonly number[]): { shape: number[]; inStride: number[]; outStride: number[] } {
  const out = { shape: [] as number[], inStride: [] as number[], outStride: [] as number[] };
  for (let d = 0; d < shape.length; d++) {
    const e = shape[d]!;
    if (e === 1) continue;
    const k = out.shape.length - 1;
    if (k >= 0 && out.inStride[k] === inStride[d]! * e && out.outStride[k] === outStride[d]! * e) {
      out.shape[k] = out.shape[k]! * e;
      out.inStride[k] = inStride[d]!;
      out.outStride[k] = outStride[d]!;
    } else {
      out.shape.push(e);
      out.inStride.push(inStride[d]!);
      out.outStride.push(outStride[d]!);
    }
  }
  if (out.shape.length === 0) return { shape: [1], inStride: [0], outStride: [0] };
  return out;
}

/**
 * dst[outOffset + Σ i·outStride] = src[inOffset + Σ i·inStride] over `shape`. Tensors over the
 * binding limit are bound in pieces: the index space is halved along its first axis until the
 * elements each half reads and writes fit one binding.
 */
export function copyStrided(src: Tensor, dst: Tensor, c: StridedCopy): void {
  if (src.dtype !== dst.dtype) throw new ReefError(`copy: ${src.describe()} → ${dst.describe()} changes the element type`);
  if (numel(c.shape) === 0) return;
  if ([...c.inStride, ...c.outStride].some((st) => st < 0)) throw new ReefError('copy: negative strides are not supported');
  const E = BYTES_PER_ELEMENT[dst.dtype];
  if (!overBindingLimit(dst.rt, src.size * E, dst.size * E)) {
    dispatchCopy(dst.rt, dst.dtype, src.buffer, dst.buffer, c);
    return;
  }
  copyInPieces(src, dst, { ...c, inOffset: c.inOffset ?? 0, outOffset: c.outOffset ?? 0 });
}

function copyInPieces(src: Tensor, dst: Tensor, c: StridedCopy & { inOffset: number; outOffset: number }): void {
  const rt = dst.rt;
  const E = BYTES_PER_ELEMENT[dst.dtype];
  const room = rt.caps.maxStorageBufferBindingSize - rt.caps.minStorageBufferOffsetAlignment;
  const end = (offset: number, stride: readonly number[]) => offset + c.shape.reduce((p, d, i) => p + (d - 1) * stride[i]!, 0) + 1;
  const inEnd = end(c.inOffset, c.inStride);
  const outEnd = end(c.outOffset, c.outStride);
  if ((inEnd - c.inOffset) * E <= room && (outEnd - c.outOffset) * E <= room) {
    const input = bindRange(src, c.inOffset, inEnd);
    const output = bindRange(dst, c.outOffset, outEnd);
    dispatchCopy(rt, dst.dtype, input.slice, output.slice, { ...c, inOffset: input.offset, outOffset: output.offset });
    return;
  }
  const axis = c.shape.findIndex((d) => d > 1);
  if (axis < 0) throw new ReefError(`copy: one element does not fit a storage binding (${rt.caps.maxStorageBufferBindingSize} bytes)`);
  const half = Math.ceil(c.shape[axis]! / 2);
  for (const [from, count] of [[0, half], [half, c.shape[axis]! - half]] as const) {
    const shape = c.shape.map((d, i) => (i === axis ? count : d));
    copyInPieces(src, dst, { ...c, shape, inOffset: c.inOffset + from * c.inStride[axis]!, outOffset: c.outOffset + from * c.outStride[axis]! });
  }
}

function dispatchCopy(rt: Tensor['rt'], dtype: Tensor['dtype'], src: GPUBuffer | BufferSlice, dst: GPUBuffer | BufferSlice, c: StridedCopy): void {
  const n = numel(c.shape);
  pack8(c.shape, 'copy'); // the rank limit holds for the copy as asked, whatever it simplifies to
  const { shape, inStride, outStride } = simplifyCopy(c.shape, c.inStride, c.outStride);
  const params = {
    n,
    rank: shape.length,
    inOffset: c.inOffset ?? 0,
    outOffset: c.outOffset ?? 0,
    shape: pack8(shape, 'copy'),
    inStride: pack8(inStride, 'copy'),
    outStride: pack8(outStride, 'copy'),
  };
  const overrides = { ACCUMULATE: c.accumulate ?? false };
  const work = { bytes: 2 * n * BYTES_PER_ELEMENT[dtype] };
  if (copyVariant(rt, c.variant) === 'runs') {
    const runs = Math.ceil(shape[shape.length - 1]! / COPY_RUN);
    const total = (n / shape[shape.length - 1]!) * runs;
    rt.dispatch({
      kernel: { shader: COPY_STRIDED_RUNS, entry: 'main', elem: dtype, overrides, consts: { RUN: COPY_RUN } },
      buffers: { src, dst },
      params: { ...params, runs, total },
      workgroups: grid1d(total, 64, rt.caps.maxWorkgroupsPerDimension),
      work,
    });
    return;
  }
  rt.dispatch({
    kernel: { shader: COPY_STRIDED, entry: 'main', elem: dtype, overrides },
    buffers: { src, dst },
    params,
    workgroups: grid1d(n, 256, rt.caps.maxWorkgroupsPerDimension),
    work,
  });
}

/** Same data, new shape (one dimension may be -1). Shares the buffer. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = [...shape];
  const free = target.indexOf(-1);
  if (free >= 0) {
    const known = target.reduce((p, d, i) => (i === free ? p : p * d), 1);
    if (known === 0 || x.size % known !== 0) throw new ReefError(`reshape: cannot infer -1 in [${shape.join(', ')}] for ${x.describe()}`);
    target[free] = x.size / known;
  }
  if (numel(target) !== x.size) throw new ReefError(`reshape: ${x.describe()} has ${x.size} elements, [${target.join(', ')}] has ${numel(target)}`);
  const out = new Tensor(x.rt, x.storage.retain(), target, x.dtype);
  return record('reshape', out, [x], [], (g) => [reshape(g, x.shape)]);
}

export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const rank = x.ndim;
  if (perm.length !== rank || new Set(perm).size !== rank || perm.some((p) => p < 0 || p >= rank || !Number.isInteger(p))) {
    throw new ReefError(`permute: [${perm.join(', ')}] is not a permutation of ${rank} axes`);
  }
  const outShape = perm.map((p) => x.shape[p]!);
  const out = empty(x.rt, outShape, x.dtype, 'permute');
  const inStrides = contiguousStrides(x.shape);
  copyStrided(x, out, { shape: outShape, inStride: perm.map((p) => inStrides[p]!), outStride: contiguousStrides(outShape) });
  const inverse = new Array<number>(rank);
  perm.forEach((p, i) => (inverse[p] = i));
  return record('permute', out, [x], [], (g) => [permute(g, inverse)]);
}

export function transpose(x: Tensor, axis0 = -2, axis1 = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const a = normalizeAxis(axis0, x.ndim, 'transpose');
  const b = normalizeAxis(axis1, x.ndim, 'transpose');
  [perm[a], perm[b]] = [perm[b]!, perm[a]!];
  return permute(x, perm);
}

/** x[starts[0]:ends[0], starts[1]:ends[1], …] (half-open, one range per axis). */
export function slice(x: Tensor, starts: readonly number[], ends: readonly number[]): Tensor {
  if (starts.length !== x.ndim || ends.length !== x.ndim) throw new ReefError(`slice: ${x.describe()} needs ${x.ndim} starts and ends`);
  starts.forEach((s, i) => {
    const e = ends[i]!;
    if (!(Number.isInteger(s) && Number.isInteger(e) && s >= 0 && s <= e && e <= x.shape[i]!)) {
      throw new ReefError(`slice: range ${s}:${e} is outside axis ${i} of ${x.describe()}`);
    }
  });
  const outShape = starts.map((s, i) => ends[i]! - s);
  const strides = contiguousStrides(x.shape);
  const offset = starts.reduce((o, s, i) => o + s * strides[i]!, 0);
  const out = empty(x.rt, outShape, x.dtype, 'slice');
  copyStrided(x, out, { shape: outShape, inOffset: offset, inStride: strides, outStride: contiguousStrides(outShape) });
  return record('slice', out, [x], [], (g) => {
    const gx = zeros(x.rt, x.shape, { dtype: x.dtype });
    copyStrided(g, gx, { shape: outShape, inStride: contiguousStrides(outShape), outOffset: offset, outStride: strides });
    return [gx];
  });
}

export function concat(parts: readonly Tensor[], axis: number): Tensor {
  const xs = [...parts]; // the tape keeps its own list: the caller may reuse theirs
  const first = xs[0];
  if (!first) throw new ReefError('concat: no tensors given');
  const ax = normalizeAxis(axis, first.ndim, 'concat');
  for (const t of xs) {
    if (t.ndim !== first.ndim || t.dtype !== first.dtype || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new ReefError(`concat: ${t.describe()} does not match ${first.describe()} off axis ${ax}`);
    }
  }
  const outShape = [...first.shape];
  outShape[ax] = xs.reduce((s, t) => s + t.shape[ax]!, 0);
  const out = empty(first.rt, outShape, first.dtype, 'concat');
  const outStrides = contiguousStrides(outShape);
  const offsets: number[] = [];
  let at = 0;
  for (const t of xs) {
    offsets.push(at);
    copyStrided(t, out, { shape: t.shape, inStride: contiguousStrides(t.shape), outOffset: at * outStrides[ax]!, outStride: outStrides });
    at += t.shape[ax]!;
  }
  return record('concat', out, xs, [], (g) =>
    xs.map((t, i) => {
      if (!t.requiresGrad) return null;
      const starts = outShape.map((_, d) => (d === ax ? offsets[i]! : 0));
      const ends = outShape.map((n, d) => (d === ax ? offsets[i]! + t.shape[ax]! : n));
      return slice(g, starts, ends);
    }),
  );
}

/** Broadcasts x to `shape` (NumPy rules), materialising the copy. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(x.shape, shape)) return reshape(x, shape);
  if (shape.length < x.ndim) throw new ReefError(`expand: cannot broadcast ${x.describe()} to [${shape.join(', ')}]`);
  x.shape.forEach((d, i) => {
    const o = shape[shape.length - x.ndim + i]!;
    if (d !== 1 && d !== o) throw new ReefError(`expand: cannot broadcast ${x.describe()} to [${shape.join(', ')}]`);
  });
  const out = empty(x.rt, shape, x.dtype, 'expand');
  copyStrided(x, out, { shape, inStride: broadcastStrides(x.shape, shape), outStride: contiguousStrides(shape) });
  return record('expand', out, [x], [], (g) => [sumTo(g, x.shape)]);
}

/**
 * Zero padding at the end of each axis (`after[i]` elements on axis i), as MONAI pads a volume on
 * the right to a multiple of the patch size. The backward is the slice of the original region.
 */
export function padEnd(x: Tensor, after: readonly number[]): Tensor {
  if (after.length !== x.ndim || after.some((a) => !Number.isInteger(a) || a < 0)) {
    throw new ReefError(`padEnd: ${x.describe()} needs ${x.ndim} non-negative integer pad sizes, got [${after.join(', ')}]`);
  }
  if (after.every((a) => a === 0)) return reshape(x, x.shape);
  const outShape = x.shape.map((d, i) => d + after[i]!);
  const out = zeros(x.rt, outShape, { dtype: x.dtype });
  copyStrided(x, out, { shape: x.shape, inStride: contiguousStrides(x.shape), outStride: contiguousStrides(outShape) });
  return record('padEnd', out, [x], [], (g) => [slice(g, x.shape.map(() => 0), x.shape)]);
}
