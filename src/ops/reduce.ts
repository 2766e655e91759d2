/** Sum and mean over any axes, deterministic (fixed-order tree in workgroup memory). */
import code from '../../shaders/reduce.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { contiguousStrides, gridRows, normalizeAxis, pack8, sameShape } from './geometry.js';
import { scale } from './pointwise.js';
import { expand, reshape } from './shape.js';
import { alignedCount, bindRange, overBindingLimit, pieceRanges } from './binding-range.js';
import type { BufferSlice } from '../gpu/runtime.js';

export const REDUCE: ShaderFile = { name: 'reduce', code };

function reduceAxes(x: Tensor, axes: readonly number[] | undefined, keepDims: boolean, mean: boolean): Tensor {
  const op = mean ? 'mean' : 'sum';
  const all = !axes || axes.length === 0;
  const red = new Set(all ? x.shape.map((_, i) => i) : axes.map((a) => normalizeAxis(a, x.ndim, op)));
  const strides = contiguousStrides(x.shape);
  const kept = x.shape.map((_, i) => i).filter((i) => !red.has(i));
  const reduced = [...red].sort((a, b) => a - b);
  const outShape = keepDims ? x.shape.map((d, i) => (red.has(i) ? 1 : d)) : kept.map((i) => x.shape[i]!);
  const outCount = kept.reduce((p, i) => p * x.shape[i]!, 1);
  const redCount = reduced.reduce((p, i) => p * x.shape[i]!, 1);
  const out = empty(x.rt, outShape, x.dtype, op);
  if (outCount > 0) {
    const rt = x.rt;
    const E = BYTES_PER_ELEMENT[x.dtype];
    const params = (rows: number, keptShape: number[], keptStride: number[]) => ({
      outCount: rows,
      redCount,
      keptRank: keptShape.length,
      redRank: reduced.length,
      scale: mean ? (redCount > 0 ? 1 / redCount : NaN) : 1,
      keptShape: pack8(keptShape, op),
      keptStride: pack8(keptStride, op),
      redShape: pack8(reduced.map((i) => x.shape[i]!), op),
      redStride: pack8(reduced.map((i) => strides[i]!), op),
    });
    const dispatch = (rows: number, keptShape: number[], keptStride: number[], src: GPUBuffer | BufferSlice, dst: GPUBuffer) =>
      rt.dispatch({
        kernel: { shader: REDUCE, entry: 'main', elem: x.dtype },
        buffers: { src, dst },
        params: params(rows, keptShape, keptStride),
        workgroups: gridRows(rows, rt.caps.maxWorkgroupsPerDimension),
        work: { flops: rows * redCount, bytes: (rows * redCount + rows) * E },
      });
    if (!overBindingLimit(rt, x.size * E)) {
      dispatch(outCount, kept.map((i) => x.shape[i]!), kept.map((i) => strides[i]!), x.buffer, out.buffer);
    } else {
      reduceInPieces(x, out, reduced, outCount, redCount, dispatch, op);
    }
  }
  const keptShape = x.shape.map((d, i) => (red.has(i) ? 1 : d));
  return record(op, out, [x], [], (g) => {
    const kept = reshape(g, keptShape);
    const spread = expand(kept, x.shape);
    kept.dispose();
    if (!mean) return [spread];
    const scaled = scale(spread, 1 / redCount);
    spread.dispose();
    return [scaled];
  });
}

/**
 * x over the binding limit, reduced over its trailing axes (the spatial mean of a large map): blocks
 * of whole rows, each reduced into a small temporary and copied into its place in `out`.
 */
function reduceInPieces(
  x: Tensor,
  out: Tensor,
  reduced: number[],
  outCount: number,
  redCount: number,
  dispatch: (rows: number, keptShape: number[], keptStride: number[], src: BufferSlice, dst: GPUBuffer) => void,
  op: string,
): void {
  const rt = x.rt;
  const E = BYTES_PER_ELEMENT[x.dtype];
  const trailing = reduced.every((a, i) => a === x.ndim - reduced.length + i);
  const fail = (why: string): never => {
    out.dispose();
    throw new ReefError(`${op}: ${x.describe()} exceeds the adapter's maxStorageBufferBindingSize (${rt.caps.maxStorageBufferBindingSize} bytes): ${why}`);
  };
  if (!trailing) fail('only reductions over the trailing axes are split into pieces');
  if ((outCount * E) % 4 !== 0) fail('an odd number of f16 results');
  const pieces = pieceRanges(outCount, redCount * E, alignedCount(redCount * E, rt.caps.minStorageBufferOffsetAlignment), rt.caps.maxStorageBufferBindingSize);
  if (!pieces) return fail(`one row of ${redCount} values does not fit`);
  for (const [r0, n] of pieces) {
    const part = empty(rt, [n], x.dtype, `${op}_piece`);
    try {
      // The kept axes flatten to one of n rows, each redCount values apart.
      dispatch(n, [n], [redCount], bindRange(x, r0 * redCount, (r0 + n) * redCount).slice, part.buffer);
      rt.copy(part.buffer, 0, out.buffer, r0 * E, n * E);
    } finally {
      part.dispose();
    }
  }
}

/** Sum over `axes` (all when omitted or empty). */
export function sum(x: Tensor, axes?: readonly number[], keepDims = false): Tensor {
  return reduceAxes(x, axes, keepDims, false);
}

/** Mean over `axes` (all when omitted or empty). */
export function mean(x: Tensor, axes?: readonly number[], keepDims = false): Tensor {
  return reduceAxes(x, axes, keepDims, true);
}

/** Sums a broadcast result back to `shape` (the backward of broadcasting). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return reshape(g, shape);
  const lead = g.ndim - shape.length;
  if (lead < 0) throw new ReefError(`sumTo: ${g.describe()} cannot be summed to [${shape.join(', ')}]`);
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead) axes.push(i);
    else if (shape[i - lead] === 1 && g.shape[i] !== 1) axes.push(i);
    else if (shape[i - lead] !== g.shape[i]) throw new ReefError(`sumTo: ${g.describe()} cannot be summed to [${shape.join(', ')}]`);
  }
  const s = sum(g, axes, true);
  const out = reshape(s, shape);
  s.dispose();
  return out;
}
