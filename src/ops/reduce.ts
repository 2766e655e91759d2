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
    rt.dispatch({
      kernel: { shader: REDUCE, entry: 'main', elem: x.dtype },
      buffers: { src: x.buffer, dst: out.buffer },
      params: {
        outCount,
        redCount,
        keptRank: kept.length,
        redRank: reduced.length,
        scale: mean ? (redCount > 0 ? 1 / redCount : NaN) : 1,
        keptShape: pack8(kept.map((i) => x.shape[i]!), op),
        keptStride: pack8(kept.map((i) => strides[i]!), op),
        redShape: pack8(reduced.map((i) => x.shape[i]!), op),
        redStride: pack8(reduced.map((i) => strides[i]!), op),
      },
      workgroups: gridRows(outCount, rt.caps.maxWorkgroupsPerDimension),
      work: { flops: x.size, bytes: (x.size + outCount) * BYTES_PER_ELEMENT[x.dtype] },
    });
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
