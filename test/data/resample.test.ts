/**
 * Resampling (MONAI Spacing geometry: corner-aligned, round-half-even sizes, border padding),
 * checked against float64 expectations computed here independently.
 */
import { describe, expect, it } from 'vitest';
import type { Volume } from '../../src/data/nifti';
import { resampledShape, resampleTrilinear, resampleVolume, roundHalfEven } from '../../src/data/resample';
import { Rng } from '../../src/data/rng';

function vol(shape: [number, number, number], spacing: [number, number, number], f: (i: number, j: number, k: number) => number): Volume {
  const data = new Float32Array(shape[0] * shape[1] * shape[2]);
  let p = 0;
  for (let i = 0; i < shape[0]; i++) for (let j = 0; j < shape[1]; j++) for (let k = 0; k < shape[2]; k++) data[p++] = f(i, j, k);
  const affine = [spacing[0], 0, 0, 5, 0, -spacing[1], 0, 6, 0, 0, spacing[2], 7, 0, 0, 0, 1];
  return { data, shape, spacing, affine, dtype: 'float32', name: 'v' };
}

/** Independent trilinear sample at continuous index (x, y, z), clamped to the volume. */
function sample(v: Volume, x: number, y: number, z: number): number {
  const c = [x, y, z].map((t, d) => Math.min(Math.max(t, 0), v.shape[d]! - 1));
  let acc = 0;
  for (let corner = 0; corner < 8; corner++) {
    let w = 1;
    const idx = c.map((t, d) => {
      const lo = Math.floor(t);
      const hi = Math.min(lo + 1, v.shape[d]! - 1);
      const f = t - lo;
      const bit = (corner >> d) & 1;
      w *= bit ? f : 1 - f;
      return bit ? hi : lo;
    });
    acc += w * v.data[(idx[0]! * v.shape[1] + idx[1]!) * v.shape[2] + idx[2]!]!;
  }
  return acc;
}

describe('resampledShape', () => {
  it('is round((n − 1)·spacing/target + 1) with numpy rounding', () => {
    expect(roundHalfEven(2.5)).toBe(2);
    expect(roundHalfEven(3.5)).toBe(4);
    expect(roundHalfEven(-2.5)).toBe(-2);
    expect(roundHalfEven(2.4999)).toBe(2);
    // Cranium: 256 × 0.9570312 mm and 108 × 1.5 mm.
    expect(resampledShape([256, 256, 108], [0.9570312, 0.9570312, 1.5], 1.5)).toEqual([164, 164, 108]);
    // (n − 1)·s/t + 1 = 4.5 → 4 (even), and 5.5 → 6.
    expect(resampledShape([8, 10, 1], [1, 1, 1], [2, 2, 2])).toEqual([4, 6, 1]);
  });
});

describe('resampleVolume', () => {
  it('keeps a constant volume exactly constant', () => {
    const v = vol([7, 6, 5], [0.8, 1.1, 2.3], () => -321.5);
    const r = resampleVolume(v, 1.5);
    expect(r.data.every((x) => x === -321.5)).toBe(true);
  });

  it('is the identity (an exact copy) at equal spacing', () => {
    const rng = Rng.fromKeys(1);
    const v = vol([4, 5, 6], [1.5, 1.5, 1.5], () => rng.uniform(-1000, 1000));
    const r = resampleVolume(v, 1.5);
    expect(r.shape).toEqual(v.shape);
    expect(r.data).toEqual(v.data);
    expect(r.data).not.toBe(v.data);
    expect(r.affine).toEqual(v.affine);
  });

  it('keeps a linear ramp linear: value at output o is the ramp at o·target/spacing', () => {
    const a = 3.25, b = -1.5, c = 0.75, d = 10;
    const sp: [number, number, number] = [0.7, 1.3, 2];
    const v = vol([12, 9, 6], sp, (i, j, k) => a * i + b * j + c * k + d);
    const r = resampleVolume(v, 1.5);
    expect(r.shape).toEqual(resampledShape(v.shape, sp, 1.5));
    let p = 0;
    let worst = 0;
    for (let i = 0; i < r.shape[0]; i++) {
      for (let j = 0; j < r.shape[1]; j++) {
        for (let k = 0; k < r.shape[2]; k++) {
          // Border padding: positions past the last voxel repeat it.
          const x = Math.min((i * 1.5) / sp[0], 11), y = Math.min((j * 1.5) / sp[1], 8), z = Math.min((k * 1.5) / sp[2], 5);
          const want = a * x + b * y + c * z + d;
          worst = Math.max(worst, Math.abs(r.data[p++]! - want) / Math.max(1, Math.abs(want)));
        }
      }
    }
    expect(worst).toBeLessThan(1e-6);
  });

  it('matches an independent float64 trilinear on random data (down and up sampling)', () => {
    const rng = Rng.fromKeys(2);
    const sp: [number, number, number] = [0.6, 2.5, 1.1];
    const v = vol([11, 5, 8], sp, () => rng.uniform(-1000, 2000));
    const r = resampleVolume(v, [1.5, 1.0, 1.5]);
    const t = [1.5, 1.0, 1.5];
    let p = 0;
    for (let i = 0; i < r.shape[0]; i++) {
      for (let j = 0; j < r.shape[1]; j++) {
        for (let k = 0; k < r.shape[2]; k++) {
          const want = sample(v, (i * t[0]!) / sp[0], (j * t[1]!) / sp[1], (k * t[2]!) / sp[2]);
          expect(Math.abs(r.data[p++]! - want)).toBeLessThan(2e-4);
        }
      }
    }
  });

  it('updates spacing and the affine columns, keeping directions and origin', () => {
    const v = vol([4, 4, 4], [0.5, 0.75, 3], () => 0);
    const r = resampleVolume(v, 1.5);
    expect(r.spacing).toEqual([1.5, 1.5, 1.5]);
    expect(r.affine).toEqual([1.5, 0, 0, 5, 0, -1.5, 0, 6, 0, 0, 1.5, 7, 0, 0, 0, 1]);
    expect(r.dtype).toBe('float32');
  });

  it('rejects bad targets', () => {
    const v = vol([2, 2, 2], [1, 1, 1], () => 0);
    expect(() => resampleVolume(v, 0)).toThrow(/target spacing must be a positive number/);
    expect(() => resampleVolume(v, [1, 1] as unknown as number[])).toThrow(/target spacing/);
  });
});

describe('resampleTrilinear', () => {
  it('samples offset + o·step and clamps at the borders', () => {
    const v = vol([1, 1, 5], [1, 1, 1], (_i, _j, k) => 10 * k);
    const out = resampleTrilinear(v.data, v.shape, [1, 1, 4], [1, 1, 1.5], [0, 0, -0.5]);
    expect(Array.from(out)).toEqual([0, 10, 25, 40]);
  });
});
