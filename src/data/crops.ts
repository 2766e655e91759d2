/**
 * Random resized 3-D crops inside the body, in the manner of DINO's RandomResizedCrop:
 *
 *  1. a volume fraction s ~ U(scale) of a reference volume (default: the foreground bounding box,
 *     so the air around a patient does not count; or the whole volume);
 *  2. per-axis aspect factors exp(u_d), u_d ~ U(log aspect), re-centred so their product is 1;
 *  3. box sides round(∛(s·V_ref)·exp(u_d)), clamped to [1, volume side];
 *  4. the box is centred on a foreground voxel (> −500 HU by default) drawn uniformly, then shifted
 *     to lie inside the volume (it still contains that voxel, so it always overlaps the body);
 *  5. the box is resized to side³ by trilinear interpolation with align_corners = false geometry
 *     (voxel-area aligned, as torch's interpolate; a box of exactly side³ is copied unchanged).
 *     When upsampling, samples within half a voxel of a box face blend in the real voxel beyond
 *     it (torch, given only the box, would repeat the face); there is no antialiasing when
 *     downsampling, as in torch's trilinear interpolate.
 *
 * RNG draws per box, in order: s, u_0, u_1, u_2, the foreground voxel.
 */
import type { Volume } from './nifti.js';
import { DataError } from './errors.js';
import { resampleTrilinear } from './resample.js';
import type { Rng } from './rng.js';

export type Vec3 = [number, number, number];

/** Foreground: strictly above this HU value (air is −1000, lung ≈ −850, fat ≈ −100). */
export const FOREGROUND_HU = -500;

export interface CropSource {
  volume: Volume;
  threshold: number;
  /** Flat (D, H, W) indices of the foreground voxels. */
  foreground: Uint32Array;
  /** Foreground bounding box: lo inclusive, hi exclusive, voxel indices. */
  bboxLo: Vec3;
  bboxHi: Vec3;
}

export interface CropSpec {
  /** Output side in voxels (the crop is side³). */
  side: number;
  /** Range of the box's volume as a fraction of the reference volume. */
  scale: readonly [number, number];
  /** Range of per-axis aspect factors before re-centring; default [3/4, 4/3]. */
  aspect?: readonly [number, number];
  /** What `scale` is a fraction of; default the foreground bounding box. */
  reference?: 'foreground' | 'volume';
}

export interface CropBox {
  /** First voxel of the box. */
  start: Vec3;
  /** Box size in voxels (before resizing to side³). */
  size: Vec3;
  /** The foreground voxel the box was centred on. */
  center: Vec3;
}

function fmtShape(s: readonly number[]): string {
  return s.join('×');
}

/**
 * Checks the volume (finite values, some foreground) and indexes its foreground once, so that each
 * crop draws its centre in O(1). Errors name the volume.
 */
export function prepareCropSource(volume: Volume, threshold = FOREGROUND_HU): CropSource {
  const { data, shape, name } = volume;
  const [nd, nh, nw] = shape;
  if (data.length !== nd * nh * nw) throw new DataError(`${name}: ${data.length} values for shape ${fmtShape(shape)}`);
  let bad = 0;
  let firstBad = -1;
  let count = 0;
  let lo = Infinity;
  let hi = -Infinity;
  for (let p = 0; p < data.length; p++) {
    const v = data[p]!;
    if (!Number.isFinite(v)) {
      if (bad++ === 0) firstBad = p;
      continue;
    }
    if (v > threshold) count++;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (bad > 0) {
    throw new DataError(
      `${name}: ${bad} of ${data.length} voxels are NaN or infinite (first at ${fmtIndex(firstBad, shape)}, value ${data[firstBad]}); ` +
        'the crop pipeline needs finite HU values: fix or drop this scan',
    );
  }
  if (count === 0) {
    throw new DataError(
      `${name}: no foreground: no voxel above ${threshold} HU (values span ${lo}…${hi}); ` + 'is this a CT in Hounsfield units (air −1000, soft tissue ≈ 40)?',
    );
  }
  const foreground = new Uint32Array(count);
  const bboxLo: Vec3 = [nd, nh, nw];
  const bboxHi: Vec3 = [0, 0, 0];
  let n = 0;
  let p = 0;
  for (let a = 0; a < nd; a++) {
    for (let b = 0; b < nh; b++) {
      for (let c = 0; c < nw; c++, p++) {
        if (!(data[p]! > threshold)) continue;
        foreground[n++] = p;
        if (a < bboxLo[0]) bboxLo[0] = a;
        if (a >= bboxHi[0]) bboxHi[0] = a + 1;
        if (b < bboxLo[1]) bboxLo[1] = b;
        if (b >= bboxHi[1]) bboxHi[1] = b + 1;
        if (c < bboxLo[2]) bboxLo[2] = c;
        if (c >= bboxHi[2]) bboxHi[2] = c + 1;
      }
    }
  }
  return { volume, threshold, foreground, bboxLo, bboxHi };
}

function fmtIndex(p: number, shape: readonly number[]): string {
  const [, nh, nw] = shape as Vec3;
  return `(${Math.floor(p / (nh * nw))}, ${Math.floor(p / nw) % nh}, ${p % nw})`;
}

function checkSpec(spec: CropSpec): void {
  const { side, scale } = spec;
  const aspect = spec.aspect ?? [3 / 4, 4 / 3];
  if (!Number.isInteger(side) || side < 1) throw new DataError(`crop side must be a positive integer, got ${side}`);
  if (!(scale[0] > 0 && scale[0] <= scale[1])) throw new DataError(`crop scale must satisfy 0 < lo ≤ hi, got [${scale.join(', ')}]`);
  if (!(aspect[0] > 0 && aspect[0] <= 1 && aspect[1] >= 1)) throw new DataError(`crop aspect range must satisfy 0 < lo ≤ 1 ≤ hi, got [${aspect.join(', ')}]`);
}

/**
 * Throws unless a side³ crop fits in the volume on every axis (a crop would otherwise have to be
 * invented beyond the scan): e.g. a 96³ crop at 1.5 mm needs 144 mm of scan along each axis.
 */
export function checkCropFits(volume: Pick<Volume, 'shape' | 'spacing' | 'name'>, side: number): void {
  const { shape, spacing, name } = volume;
  for (let d = 0; d < 3; d++) {
    if (shape[d]! < side) {
      throw new DataError(
        `${name}: the volume (${fmtShape(shape)} voxels at ${spacing.map((s) => +s.toFixed(3)).join('×')} mm) is smaller than a ` +
          `${side}³ crop along axis ${d} (${shape[d]} < ${side}); use a larger scan, smaller crops, or pad the volume first`,
      );
    }
  }
}

/** Draws one box (see the module comment); the box lies inside the volume and contains a foreground voxel. */
export function sampleCropBox(src: CropSource, rng: Rng, spec: CropSpec): CropBox {
  checkSpec(spec);
  const shape = src.volume.shape;
  checkCropFits(src.volume, spec.side);
  const [alo, ahi] = spec.aspect ?? [3 / 4, 4 / 3];
  const ref =
    (spec.reference ?? 'foreground') === 'foreground'
      ? (src.bboxHi[0] - src.bboxLo[0]) * (src.bboxHi[1] - src.bboxLo[1]) * (src.bboxHi[2] - src.bboxLo[2])
      : shape[0] * shape[1] * shape[2];
  const s = rng.uniform(spec.scale[0], spec.scale[1]);
  const u = [0, 1, 2].map(() => rng.uniform(Math.log(alo), Math.log(ahi)));
  const mean = (u[0]! + u[1]! + u[2]!) / 3;
  const edge = Math.cbrt(s * ref);
  const size = [0, 1, 2].map((d) => Math.min(shape[d]!, Math.max(1, Math.round(edge * Math.exp(u[d]! - mean))))) as Vec3;

  const p = src.foreground[rng.int(src.foreground.length)]!;
  const [, nh, nw] = shape;
  const center: Vec3 = [Math.floor(p / (nh * nw)), Math.floor(p / nw) % nh, p % nw];
  const start = [0, 1, 2].map((d) => Math.min(Math.max(center[d]! - Math.floor(size[d]! / 2), 0), shape[d]! - size[d]!)) as Vec3;
  return { start, size, center };
}

/**
 * The part of `src` inside `box`: its foreground voxels and bounding box only, so crops drawn from
 * it are centred in the box and sized by its body (the volume is shared, not copied). A box with
 * no foreground gives the whole source back (sampleCropBox never draws one: it is centred on the body).
 */
export function regionSource(src: CropSource, box: CropBox): CropSource {
  const [, nh, nw] = src.volume.shape;
  const hi = box.start.map((s, d) => s + box.size[d]!) as Vec3;
  const inside: number[] = [];
  for (const p of src.foreground) {
    const a = Math.floor(p / (nh * nw));
    const b = Math.floor(p / nw) % nh;
    const c = p % nw;
    if (a >= box.start[0] && a < hi[0] && b >= box.start[1] && b < hi[1] && c >= box.start[2] && c < hi[2]) inside.push(p);
  }
  if (inside.length === 0) return src;
  const bboxLo = box.start.map((s, d) => Math.max(s, src.bboxLo[d]!)) as Vec3;
  const bboxHi = hi.map((h, d) => Math.min(h, src.bboxHi[d]!)) as Vec3;
  return { ...src, foreground: Uint32Array.from(inside), bboxLo, bboxHi };
}

/** The box resized to side³ (trilinear, align_corners = false); writes into `out` if given. */
export function cropResize(volume: Pick<Volume, 'data' | 'shape'>, box: CropBox, side: number, out?: Float32Array): Float32Array {
  const step = box.size.map((n) => n / side);
  const offset = box.start.map((s, d) => s + 0.5 * step[d]! - 0.5);
  return resampleTrilinear(volume.data, volume.shape, [side, side, side], step, offset, out);
}
