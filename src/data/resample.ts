/**
 * Trilinear resampling to a new voxel spacing, with MONAI `Spacing(pixdim, mode="bilinear",
 * padding_mode="border")` geometry (the CoralBay preprocessing at 1.5 mm):
 *
 *  - corner-aligned: output voxel o sits on input index o·(target/spacing) along each axis, so the
 *    first voxel centres coincide and the origin (affine translation) is kept;
 *  - output size per axis = roundHalfEven((n − 1)·spacing/target + 1), as numpy's round;
 *  - samples past the last input voxel repeat it (border padding).
 *
 * Directions of the affine are kept; only the column lengths change to the target spacing.
 */
import type { Volume } from './nifti.js';
import { DataError } from './errors.js';

export const DEFAULT_SPACING_MM = 1.5;

type Vec3 = [number, number, number];

/** numpy's round: halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function asVec3(v: number | readonly number[], what: string): Vec3 {
  const a = typeof v === 'number' ? [v, v, v] : [...v];
  if (a.length !== 3 || !a.every((x) => Number.isFinite(x) && x > 0)) throw new DataError(`resample: ${what} must be a positive number or 3 of them, got ${JSON.stringify(v)}`);
  return a as Vec3;
}

export function resampledShape(shape: readonly number[], spacing: readonly number[], target: number | readonly number[] = DEFAULT_SPACING_MM): Vec3 {
  const t = asVec3(target, 'target spacing');
  const s = asVec3(spacing, 'spacing');
  return [0, 1, 2].map((d) => Math.max(1, roundHalfEven(((shape[d]! - 1) * s[d]!) / t[d]! + 1))) as Vec3;
}

interface AxisTable {
  i0: Int32Array;
  i1: Int32Array;
  f: Float64Array;
}

/** For each output index o: the two input neighbours of offset + o·step and the weight of the second. */
function axisTable(nIn: number, nOut: number, step: number, offset: number): AxisTable {
  const i0 = new Int32Array(nOut);
  const i1 = new Int32Array(nOut);
  const f = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    const x = Math.min(Math.max(offset + o * step, 0), nIn - 1);
    const lo = Math.min(Math.floor(x), nIn - 1);
    i0[o] = lo;
    i1[o] = Math.min(lo + 1, nIn - 1);
    f[o] = x - lo;
  }
  return { i0, i1, f };
}

/**
 * `out[o] = src(offset + o ⊙ step)` (continuous input index, voxel centres at integers), trilinear
 * in f64 with border clamping; src and out are (D, H, W) row-major. This is the core of spacing
 * changes (step = target/spacing, offset 0) and of crop resizing.
 */
export function resampleTrilinear(
  src: Float32Array,
  shape: readonly number[],
  outShape: readonly number[],
  step: readonly number[],
  offset: readonly number[] = [0, 0, 0],
  out: Float32Array = new Float32Array(outShape[0]! * outShape[1]! * outShape[2]!),
): Float32Array {
  const [nd, nh, nw] = shape as Vec3;
  const [od, oh, ow] = outShape as Vec3;
  if (src.length !== nd * nh * nw) throw new DataError(`resampleTrilinear: ${src.length} values for shape [${shape.join(', ')}]`);
  if (out.length !== od * oh * ow) throw new DataError(`resampleTrilinear: output holds ${out.length} values, shape [${outShape.join(', ')}] needs ${od * oh * ow}`);
  const A = axisTable(nd, od, step[0]!, offset[0]!);
  const B = axisTable(nh, oh, step[1]!, offset[1]!);
  const C = axisTable(nw, ow, step[2]!, offset[2]!);
  let p = 0;
  for (let a = 0; a < od; a++) {
    const fa = A.f[a]!;
    const a0 = A.i0[a]! * nh;
    const a1 = A.i1[a]! * nh;
    for (let b = 0; b < oh; b++) {
      const fb = B.f[b]!;
      const r00 = (a0 + B.i0[b]!) * nw;
      const r01 = (a0 + B.i1[b]!) * nw;
      const r10 = (a1 + B.i0[b]!) * nw;
      const r11 = (a1 + B.i1[b]!) * nw;
      // Nested lerps x0 + f·(x1 − x0): a constant stays exactly constant.
      for (let c = 0; c < ow; c++) {
        const k0 = C.i0[c]!;
        const k1 = C.i1[c]!;
        const fc = C.f[c]!;
        let x = src[r00 + k0]!;
        const s00 = x + fc * (src[r00 + k1]! - x);
        x = src[r01 + k0]!;
        const s01 = x + fc * (src[r01 + k1]! - x);
        x = src[r10 + k0]!;
        const s10 = x + fc * (src[r10 + k1]! - x);
        x = src[r11 + k0]!;
        const s11 = x + fc * (src[r11 + k1]! - x);
        const t0 = s00 + fb * (s01 - s00);
        const t1 = s10 + fb * (s11 - s10);
        out[p++] = t0 + fa * (t1 - t0);
      }
    }
  }
  return out;
}

/** The volume resampled to `target` mm (default 1.5 isotropic); equal spacing gives an exact copy. */
export function resampleVolume(vol: Volume, target: number | readonly number[] = DEFAULT_SPACING_MM): Volume {
  const t = asVec3(target, 'target spacing');
  const s = asVec3(vol.spacing, `${vol.name}: spacing`);
  const outShape = resampledShape(vol.shape, s, t);
  const step = [0, 1, 2].map((d) => t[d]! / s[d]!);
  const same = step.every((x) => x === 1);
  const data = same ? vol.data.slice() : resampleTrilinear(vol.data, vol.shape, outShape, step);
  const A = vol.affine;
  const affine = A.map((v, n) => (n < 12 && n % 4 < 3 ? (v * t[n % 4]!) / s[n % 4]! : v));
  return { data, shape: outShape, spacing: t, affine, dtype: 'float32', name: vol.name };
}
