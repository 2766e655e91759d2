/**
 * Sum and mean over any axes, deterministic. Kernels: `tree` (reduce.wgsl: one workgroup per output,
 * a fixed-order tree in workgroup memory; any axes) and, for sums over leading or trailing axes on
 * CPU adapters, `columns` (reduce_columns.wgsl: lanes own a chunk of one sum, no barriers, no index
 * division per element). Default per adapter; REEF_REDUCE overrides.
 */
import code from '../../shaders/reduce.wgsl';
import columnsCode from '../../shaders/reduce_columns.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { empty } from '../tensor/create.js';
import { record } from '../tensor/tape.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';
import { contiguousStrides, grid1d, gridRows, normalizeAxis, pack8, sameShape } from './geometry.js';
import { scale } from './pointwise.js';
import { expand, reshape } from './shape.js';
import { alignedCount, bindRange, overBindingLimit, pieceRanges } from './binding-range.js';
import type { BufferSlice } from '../gpu/runtime.js';

export const REDUCE: ShaderFile = { name: 'reduce', code };
export const REDUCE_COLUMNS: ShaderFile = { name: 'reduce_columns', code: columnsCode };

export const REDUCE_VARIANTS = ['tree', 'columns'] as const;
export type ReduceVariant = (typeof REDUCE_VARIANTS)[number];
/** Rows per lane of the columns kernel's first pass. */
const COLUMN_CHUNK = 256;

function reduceVariant(rt: Tensor['rt'], requested?: ReduceVariant): ReduceVariant {
  const forced = rt.host.env('REEF_REDUCE') || undefined;
  if (forced !== undefined && !REDUCE_VARIANTS.includes(forced as ReduceVariant)) throw new ReefError(`REEF_REDUCE=${forced}: expected ${REDUCE_VARIANTS.join(' or ')}`);
  return requested ?? (forced as ReduceVariant | undefined) ?? (rt.caps.isCpu ? 'columns' : 'tree');
}

export interface ReduceOptions {
  /** Kernel for sums over leading or trailing axes (others always use `tree`); default per adapter. */
  variant?: ReduceVariant;
}

function reduceAxes(x: Tensor, axes: readonly number[] | undefined, keepDims: boolean, mean: boolean, o: ReduceOptions = {}): Tensor {
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
    const fits = !overBindingLimit(x.rt, x.size * BYTES_PER_ELEMENT[x.dtype]);
    const leading = reduced.every((a, i) => a === i);
    const trailing = reduced.every((a, i) => a === x.ndim - reduced.length + i);
    if (fits && (leading || trailing) && redCount > 1 && reduceVariant(x.rt, o.variant) === 'columns') {
      // Leading: value r of sum c at r·N + c; trailing: at c·R + r.
      reduceColumns(x, out, redCount, outCount, leading ? [outCount, 1] : [1, redCount], mean ? 1 / redCount : 1);
    } else if (fits) {
      dispatchReduce(x, x.buffer, out.buffer, op, {
        rows: outCount,
        kept: [kept.map((i) => x.shape[i]!), kept.map((i) => strides[i]!)],
        red: [reduced.map((i) => x.shape[i]!), reduced.map((i) => strides[i]!)],
        scale: mean ? (redCount > 0 ? 1 / redCount : NaN) : 1,
      });
    } else {
      try {
        reduceInPieces(x, out, reduced, outCount, redCount, mean, op);
      } catch (e) {
        out.dispose();
        throw e;
      }
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

/** N sums of R values of x, value r of sum c at r·rs + c·cs, into out[N] (times scale): the columns kernel's two passes. */
function reduceColumns(x: Tensor, out: Tensor, R: number, N: number, [rs, cs]: [number, number], scale: number): void {
  const rt = x.rt;
  const K = Math.ceil(R / COLUMN_CHUNK);
  const part = empty(rt, [K, N], 'f32', 'reduce_columns_parts');
  const params = { R, N, L: COLUMN_CHUNK, K, rs, cs, scale };
  const kernel = (entry: string) => ({ shader: REDUCE_COLUMNS, entry, elem: x.dtype });
  const E = BYTES_PER_ELEMENT[x.dtype];
  try {
    rt.dispatch({ kernel: kernel('chunkSums'), buffers: { src: x.buffer, part: part.buffer }, params, workgroups: grid1d(K * N, 64, rt.caps.maxWorkgroupsPerDimension), work: { flops: R * N, bytes: R * N * E + K * N * 4 } });
    rt.dispatch({ kernel: kernel('finish'), buffers: { part: part.buffer, dst: out.buffer }, params, workgroups: grid1d(N, 64, rt.caps.maxWorkgroupsPerDimension), work: { flops: K * N, bytes: K * N * 4 + N * E } });
  } finally {
    part.dispose();
  }
}

interface ReduceGeometry {
  /** Output elements; each sums `red` at its `kept` position. */
  rows: number;
  kept: [shape: number[], stride: number[]];
  red: [shape: number[], stride: number[]];
  scale: number;
}

/** One dispatch of the reduce kernel over src (x's element type) into dst. */
function dispatchReduce(x: Tensor, src: GPUBuffer | BufferSlice, dst: GPUBuffer, op: string, g: ReduceGeometry): void {
  const rt = x.rt;
  const redCount = g.red[0].reduce((p, d) => p * d, 1);
  rt.dispatch({
    kernel: { shader: REDUCE, entry: 'main', elem: x.dtype },
    buffers: { src, dst },
    params: {
      outCount: g.rows,
      redCount,
      keptRank: g.kept[0].length,
      redRank: g.red[0].length,
      scale: g.scale,
      keptShape: pack8(g.kept[0], op),
      keptStride: pack8(g.kept[1], op),
      redShape: pack8(g.red[0], op),
      redStride: pack8(g.red[1], op),
    },
    workgroups: gridRows(g.rows, rt.caps.maxWorkgroupsPerDimension),
    work: { flops: g.rows * redCount, bytes: (g.rows * redCount + g.rows) * BYTES_PER_ELEMENT[x.dtype] },
  });
}

/**
 * x over the binding limit, reduced over its trailing axes (the spatial mean of a large map, the mean
 * of a whole one): x is read as rows of contiguous values, in blocks of whole rows that each reduce
 * into a small temporary copied into place. A row too long for one binding is cut into equal
 * sub-rows whose sums are added by a second, small reduction. Fixed order throughout.
 */
function reduceInPieces(x: Tensor, out: Tensor, reduced: number[], outCount: number, redCount: number, mean: boolean, op: string): void {
  const rt = x.rt;
  const E = BYTES_PER_ELEMENT[x.dtype];
  const room = rt.caps.maxStorageBufferBindingSize;
  const align = rt.caps.minStorageBufferOffsetAlignment;
  const fail = (why: string): never => {
    throw new ReefError(`${op}: ${x.describe()} exceeds the adapter's maxStorageBufferBindingSize (${room} bytes): ${why}`);
  };
  if (reduced.every((a, i) => a === i)) return reduceLeadingInPieces(x, out, outCount, redCount, mean, op);
  if (!reduced.every((a, i) => a === x.ndim - reduced.length + i)) fail('only reductions over the leading or the trailing axes are split into pieces');
  // Sub-rows: the fewest equal parts of a row that fit a binding with room for an aligned block.
  let parts = 1;
  while (parts <= redCount && (redCount % parts !== 0 || (redCount / parts) * E * alignedCount((redCount / parts) * E, align) > room)) parts++;
  if (parts > redCount) fail(`its rows of ${redCount} values cannot be cut into aligned parts that fit`);
  const len = redCount / parts;
  const rows = outCount * parts;
  const rowSums = (target: Tensor, scale: number) => {
    const pieces = pieceRanges(rows, len * E, alignedCount(len * E, align), room)!;
    for (const [r0, n] of pieces) {
      const part = empty(rt, [n], x.dtype, `${op}_piece`);
      try {
        dispatchReduce(x, bindRange(x, r0 * len, (r0 + n) * len).slice, part.buffer, op, { rows: n, kept: [[n], [len]], red: [[len], [1]], scale });
        rt.copy(part.buffer, 0, target.buffer, r0 * E, n * E);
      } finally {
        part.dispose();
      }
    }
  };
  if ((rows * E) % 4 !== 0) fail('an odd number of f16 partial results');
  if (parts === 1) {
    rowSums(out, mean ? 1 / redCount : 1);
    return;
  }
  const partial = empty(rt, [outCount, parts], x.dtype, `${op}_parts`);
  try {
    rowSums(partial, 1);
    dispatchReduce(partial, partial.buffer, out.buffer, op, { rows: outCount, kept: [[outCount], [parts]], red: [[parts], [1]], scale: mean ? 1 / redCount : 1 });
  } finally {
    partial.dispose();
  }
}

/**
 * x over the binding limit, reduced over its leading axes (a bias gradient: the sum of dy's rows):
 * x is read as [R, C] in blocks of whole rows, each block summed into one row of a [blocks, C]
 * temporary, whose rows are then summed in order.
 */
function reduceLeadingInPieces(x: Tensor, out: Tensor, C: number, R: number, mean: boolean, op: string): void {
  const rt = x.rt;
  const E = BYTES_PER_ELEMENT[x.dtype];
  const pieces = pieceRanges(R, C * E, alignedCount(C * E, rt.caps.minStorageBufferOffsetAlignment), rt.caps.maxStorageBufferBindingSize);
  if (!pieces) throw new ReefError(`${op}: ${x.describe()} exceeds the adapter's maxStorageBufferBindingSize (${rt.caps.maxStorageBufferBindingSize} bytes): a block of its rows of ${C} values does not fit`);
  if ((C * E) % 4 !== 0) throw new ReefError(`${op}: ${x.describe()}: rows of an odd number of f16 values cannot be reduced in pieces`);
  const partial = empty(rt, [pieces.length, C], x.dtype, `${op}_parts`);
  const row = empty(rt, [C], x.dtype, `${op}_piece`);
  try {
    pieces.forEach(([r0, n], p) => {
      dispatchReduce(x, bindRange(x, r0 * C, (r0 + n) * C).slice, row.buffer, op, { rows: C, kept: [[C], [1]], red: [[n], [C]], scale: 1 });
      rt.copy(row.buffer, 0, partial.buffer, p * C * E, C * E);
    });
    dispatchReduce(partial, partial.buffer, out.buffer, op, { rows: C, kept: [[C], [1]], red: [[pieces.length], [C]], scale: mean ? 1 / R : 1 });
  } finally {
    row.dispose();
    partial.dispose();
  }
}

/** Sum over `axes` (all when omitted or empty). */
export function sum(x: Tensor, axes?: readonly number[], keepDims = false, o: ReduceOptions = {}): Tensor {
  return reduceAxes(x, axes, keepDims, false, o);
}

/** Mean over `axes` (all when omitted or empty). */
export function mean(x: Tensor, axes?: readonly number[], keepDims = false, o: ReduceOptions = {}): Tensor {
  return reduceAxes(x, axes, keepDims, true, o);
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
