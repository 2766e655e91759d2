/** Shape arithmetic shared by the ops: dispatch grids, strides, broadcasting, packed shape vectors. */
import { ReefError } from '../gpu/errors.js';

export const MAX_RANK = 8;

/**
 * A 1-D problem of n items on workgroups of `wg`, laid out over x·y·z workgroups (each ≤ the
 * per-dimension limit); kernels recover their index as ((z·ny + y)·nx + x)·wg + lane and skip
 * indices past the end.
 */
export function grid1d(n: number, wg: number, maxPerDim = 65535): [number, number, number] {
  const groups = Math.ceil(n / wg);
  const x = Math.min(groups, maxPerDim);
  const [y, z] = split2(Math.ceil(groups / Math.max(x, 1)), maxPerDim);
  return [x, y, z];
}

/** n items over two grid dimensions, each ≤ maxPerDim (y fills first). */
export function split2(n: number, maxPerDim = 65535): [number, number] {
  const y = Math.max(1, Math.min(n, maxPerDim));
  const z = Math.max(1, Math.ceil(n / y));
  if (z > maxPerDim) throw new ReefError(`problem of ${n} workgroup rows is too large for one dispatch`);
  return [y, z];
}

/** One workgroup per item (row or output element), laid out as x·y·z. */
export function gridRows(rows: number, maxPerDim = 65535): [number, number, number] {
  return grid1d(rows, 1, maxPerDim);
}

export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** Pads a per-dimension list to MAX_RANK entries for a `array<vec4u, 2>` uniform. */
export function pack8(values: readonly number[], what: string): number[] {
  if (values.length > MAX_RANK) throw new ReefError(`${what}: rank ${values.length} is above the supported ${MAX_RANK}`);
  return [...values, ...new Array<number>(MAX_RANK - values.length).fill(0)];
}

export function broadcastShapes(a: readonly number[], b: readonly number[], op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ReefError(`${op}: shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of `shape` seen through the broadcast `outShape` (0 on broadcast dimensions). */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const own = contiguousStrides(shape);
  const off = outShape.length - shape.length;
  return outShape.map((d, i) => {
    const j = i - off;
    if (j < 0) return 0;
    return shape[j] === 1 && d !== 1 ? 0 : own[j]!;
  });
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function normalizeAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new ReefError(`${op}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}
