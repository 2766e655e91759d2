/**
 * The feature-map colouring on the host: principal components against a float64 reference (the
 * covariance written out plainly, all its eigenpairs by cyclic Jacobi), trilinear resampling
 * against exact linear functions, and the RGB/RGBA volume end to end.
 * - Planted directions (C = 40 and 96, N = 600): eigenvectors |cos| ≥ 1 − 1e-10 to Jacobi's,
 *   eigenvalues within 1e-10 relative, including a pair of nearly equal eigenvalues at k = 3, 4.
 * - C = 768 (the widest CoralBay-B map) with N = 64 cells: residuals ‖Av − λv‖ ≤ 1e-8·λ₁.
 * - A cell mask keeps "air" out of the components (the page leaves out cells whose centre is air).
 */
import { NIFTI1 } from 'nifti-reader-js';
import { describe, expect, it } from 'vitest';
import { covariance, encodeNiftiRgba, featureStride, pcaRgb, principalComponents, resampleTrilinear, topEigenpairs } from '../../src/index';
import { Rng } from '../../src/data/rng';

/** All eigenpairs of a symmetric matrix by cyclic Jacobi, the textbook way; values descending. */
function jacobiEigen(M: Float64Array, n: number): { values: number[]; vectors: Float64Array[] } {
  const a = Float64Array.from(M);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i * n + j]! ** 2;
    if (off < 1e-40) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.hypot(theta, 1));
        const c = 1 / Math.hypot(t, 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!, akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!, aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!, vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = [...Array(n).keys()].sort((x, y) => a[y * n + y]! - a[x * n + x]!);
  return {
    values: order.map((i) => a[i * n + i]!),
    vectors: order.map((i) => Float64Array.from({ length: n }, (_, k) => v[k * n + i]!)),
  };
}

/** Random orthonormal vectors (Gram–Schmidt on Gaussian ones). */
function orthonormal(rng: Rng, n: number, k: number): Float64Array[] {
  const out: Float64Array[] = [];
  while (out.length < k) {
    const v = Float64Array.from({ length: n }, () => rng.normal());
    for (const u of out) {
      const d = u.reduce((s, x, i) => s + x * v[i]!, 0);
      for (let i = 0; i < n; i++) v[i]! -= d * u[i]!;
    }
    const norm = Math.hypot(...v);
    out.push(v.map((x) => x / norm));
  }
  return out;
}

/** A channels-first map C × N: planted directions with the given scales plus isotropic noise. */
function plantedMap(rng: Rng, C: number, N: number, scales: number[], noise: number): { map: Float32Array; dirs: Float64Array[] } {
  const dirs = orthonormal(rng, C, scales.length);
  const map = new Float32Array(C * N);
  for (let n = 0; n < N; n++) {
    const z = scales.map((s) => s * rng.normal());
    for (let c = 0; c < C; c++) {
      let x = 0.7 * (c % 5) + noise * rng.normal(); // a non-zero mean too
      z.forEach((zk, k) => (x += zk * dirs[k]![c]!));
      map[c * N + n] = x;
    }
  }
  return { map, dirs };
}

function plainCovariance(map: Float32Array, C: number, N: number): Float64Array {
  const mean = Array.from({ length: C }, (_, c) => {
    let s = 0;
    for (let n = 0; n < N; n++) s += map[c * N + n]!;
    return s / N;
  });
  const cov = new Float64Array(C * C);
  for (let a = 0; a < C; a++) for (let b = 0; b < C; b++) {
    let s = 0;
    for (let n = 0; n < N; n++) s += (map[a * N + n]! - mean[a]!) * (map[b * N + n]! - mean[b]!);
    cov[a * C + b] = s / (N - 1);
  }
  return cov;
}

const absCos = (a: Float64Array, b: Float64Array) => Math.abs(a.reduce((s, x, i) => s + x * b[i]!, 0)) / (Math.hypot(...a) * Math.hypot(...b));

describe('principal components', () => {
  for (const [C, scales, label] of [
    [40, [10, 6, 3], 'well separated'],
    [96, [8, 4, 2.02, 2], 'λ3 ≈ λ4 (ratio 1.02)'],
  ] as const) {
    it(`C = ${C}, ${label}: eigenpairs match Jacobi on the float64 covariance`, () => {
      const rng = Rng.fromKeys(C);
      const N = 600;
      const { map, dirs } = plantedMap(rng, C, N, [...scales], 0.3);
      const ref = plainCovariance(map, C, N);
      const { cov } = covariance(map, C, N);
      let covErr = 0;
      for (let i = 0; i < C * C; i++) covErr = Math.max(covErr, Math.abs(cov[i]! - ref[i]!));
      expect(covErr).toBeLessThan(1e-12 * Math.max(...ref.map(Math.abs)));

      const jac = jacobiEigen(ref, C);
      const pca = principalComponents(map, C, N, 3);
      expect(pca.converged).toBe(true);
      let worstCos = 1;
      let worstVal = 0;
      for (let k = 0; k < 3; k++) {
        worstCos = Math.min(worstCos, absCos(pca.components[k]!, jac.vectors[k]!));
        worstVal = Math.max(worstVal, Math.abs(pca.variances[k]! - jac.values[k]!) / jac.values[k]!);
        // The planted directions are recovered up to the noise.
        expect(absCos(pca.components[k]!, dirs[k]!)).toBeGreaterThan(0.95);
      }
      console.log(`PCA C=${C} (${label}): ${pca.iterations} iterations, min |cos| to Jacobi 1 − ${(1 - worstCos).toExponential(1)}, max eigenvalue rel err ${worstVal.toExponential(1)}`);
      expect(1 - worstCos).toBeLessThan(1e-10);
      expect(worstVal).toBeLessThan(1e-10);
      const trace = jac.values.reduce((s, x) => s + x, 0);
      expect(Math.abs(pca.totalVariance - trace) / trace).toBeLessThan(1e-10);
    });
  }

  it('C = 768, N = 64 (rank-deficient): small residuals, orthonormal, deterministic signs', () => {
    const rng = Rng.fromKeys(768);
    const C = 768;
    const N = 64;
    const { map } = plantedMap(rng, C, N, [5, 3, 2], 0.2);
    const { cov } = covariance(map, C, N);
    const t0 = performance.now();
    const e = topEigenpairs(cov, C, 3);
    const ms = performance.now() - t0;
    expect(e.converged).toBe(true);
    for (let k = 0; k < 3; k++) {
      const v = e.vectors[k]!;
      let rr = 0;
      for (let r = 0; r < C; r++) {
        let d = 0;
        for (let c = 0; c < C; c++) d += cov[r * C + c]! * v[c]!;
        rr += (d - e.values[k]! * v[r]!) ** 2;
      }
      expect(Math.sqrt(rr)).toBeLessThan(1e-8 * e.values[0]!);
      for (let j = 0; j < 3; j++) expect(Math.abs(v.reduce((s, x, i) => s + x * e.vectors[j]![i]!, 0) - (j === k ? 1 : 0))).toBeLessThan(1e-10);
      // Sign convention: the largest-magnitude entry is positive.
      const big = v.reduce((b, x, i) => (Math.abs(x) > Math.abs(v[b]!) ? i : b), 0);
      expect(v[big]!).toBeGreaterThan(0);
    }
    console.log(`PCA C=768 N=64: ${e.iterations} iterations, ${ms.toFixed(0)} ms`);
  });

  it('degenerate maps: one cell, constant channels', () => {
    const one = principalComponents(new Float32Array([1, 2, 3, 4]), 4, 1, 3);
    expect(one.variances).toEqual([0, 0, 0]);
    const flat = pcaRgb(new Float32Array(2 * 8).fill(3), [1, 2, 2, 2, 2], [4, 4, 4]);
    expect(flat.rgb.every((x, i) => (i % 3 === 2 ? true : x === 128))).toBe(true);
  });
});

describe('resampling and the RGB volume', () => {
  it('featureStride reads the stride off padded shapes', () => {
    expect(featureStride([32, 32, 64], [16, 16, 32])).toEqual([2, 2, 2]);
    expect(featureStride([48, 48, 48], [2, 2, 2])).toEqual([32, 32, 32]);
    expect(featureStride([33, 40, 96], [2, 3, 3])).toEqual([32, 16, 32]);
    expect(featureStride([32, 32, 32], [32, 32, 32])).toEqual([1, 1, 1]);
  });

  it('trilinear resampling reproduces a linear function between cell centres and clamps outside', () => {
    const cells = [3, 4, 5];
    const stride = [2, 4, 3];
    const f = (d: number, h: number, w: number) => 1 + 2 * d - 3 * h + 0.5 * w;
    const grid = new Float64Array(60);
    for (let d = 0; d < 3; d++) for (let h = 0; h < 4; h++) for (let w = 0; w < 5; w++) grid[(d * 4 + h) * 5 + w] = f(d, h, w);
    const out = [6, 16, 15];
    const fine = resampleTrilinear(grid, cells, out, stride);
    let worst = 0;
    for (let d = 0; d < out[0]!; d++) for (let h = 0; h < out[1]!; h++) for (let w = 0; w < out[2]!; w++) {
      const u = [d, h, w].map((i, a) => Math.min(Math.max((i + 0.5) / stride[a]! - 0.5, 0), cells[a]! - 1));
      worst = Math.max(worst, Math.abs(fine[(d * out[1]! + h) * out[2]! + w]! - f(u[0]!, u[1]!, u[2]!)));
    }
    expect(worst).toBeLessThan(1e-5);
    // Stride 1 on the same grid is the identity.
    expect([...resampleTrilinear(grid, cells, cells, [1, 1, 1])]).toEqual([...Float32Array.from(grid)]);
  });

  it('pcaRgb: three spatial patterns of decreasing strength become R, G and B', () => {
    const [D, H, W] = [4, 4, 4];
    const C = 6;
    const N = D * H * W;
    const rng = Rng.fromKeys(5);
    const dirs = orthonormal(rng, C, 3);
    const map = new Float32Array(C * N);
    for (let d = 0; d < D; d++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) {
      const n = (d * H + h) * W + w;
      const z = [4 * (d - 1.5), 2 * (h - 1.5), 1 * (w - 1.5)];
      for (let c = 0; c < C; c++) map[c * N + n] = z.reduce((s, zk, k) => s + zk * dirs[k]![c]!, 0);
    }
    const scan = [8, 8, 8];
    const r = pcaRgb(map, [1, C, D, H, W], scan);
    expect(r.stride).toEqual([2, 2, 2]);
    // Colour k varies only along axis k, monotonically.
    const at = (d: number, h: number, w: number, k: number) => r.rgb[3 * ((d * 8 + h) * 8 + w) + k]!;
    for (let k = 0; k < 3; k++) {
      const line = Array.from({ length: 8 }, (_, i) => at(k === 0 ? i : 3, k === 1 ? i : 3, k === 2 ? i : 3, k));
      const up = line.every((x, i) => i === 0 || x >= line[i - 1]!);
      const down = line.every((x, i) => i === 0 || x <= line[i - 1]!);
      expect(up || down).toBe(true);
      expect(Math.max(...line) - Math.min(...line)).toBeGreaterThan(200);
      for (let i = 0; i < 8; i++) expect(at(k === 0 ? 5 : i, k === 1 ? 5 : i, k === 2 ? 5 : i, k)).toBe(at(k === 0 ? 5 : 0, k === 1 ? 5 : 0, k === 2 ? 5 : 0, k));
    }
    const explained = r.pca.variances.reduce((s, x) => s + x, 0) / r.pca.totalVariance;
    expect(explained).toBeGreaterThan(1 - 1e-9);
  });

  it('encodeNiftiRgba: an RGBA32 NIfTI-1 with the scan affine, voxels in file order', () => {
    const shape: [number, number, number] = [3, 2, 4];
    const affine = [-1.5, 0, 0, 10, 0, 2, 0, -20, 0, 0, 2.5, 30, 0, 0, 0, 1];
    const rgba = new Uint8Array(4 * 24).map((_, i) => i % 251);
    const bytes = encodeNiftiRgba(rgba, { shape, affine, name: 'overlay' });
    const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const hdr = new NIFTI1();
    hdr.readHeader(buf);
    expect(hdr.datatypeCode).toBe(2304);
    expect(hdr.numBitsPerVoxel).toBe(32);
    expect(hdr.dims.slice(0, 4)).toEqual([3, 3, 2, 4]);
    expect(hdr.sform_code).toBe(1);
    expect(hdr.affine.flat().map((x: number) => Math.round(x * 1000) / 1000)).toEqual(affine);
    expect(Array.from(hdr.pixDims.slice(1, 4))).toEqual([1.5, 2, 2.5]);
    // A voxel whose tensor index (i-major) and file index (i-fastest) differ.
    const [i, j, k] = [1, 0, 2];
    const t = (i * 2 + j) * 4 + k;
    const f = (k * 2 + j) * 3 + i;
    expect([...bytes.subarray(352 + 4 * f, 352 + 4 * f + 4)]).toEqual([...rgba.subarray(4 * t, 4 * t + 4)]);
    expect(() => encodeNiftiRgba(rgba.subarray(1), { shape, affine })).toThrow(/RGBA voxels/);
  });
});

describe('masked statistics', () => {
  it('a cell mask keeps the masked-out cells out of the components and ranges, and still colours them', () => {
    const rng = Rng.fromKeys(9);
    const [D, H, W] = [4, 4, 4];
    const C = 8;
    const N = D * H * W;
    const dirs = orthonormal(rng, C, 4);
    const map = new Float32Array(C * N);
    const mask = new Uint8Array(N);
    for (let n = 0; n < N; n++) {
      // "Air" (the first 16 cells): far away along dirs[3]; inside: a spread along dirs[0..2].
      const air = n < 16;
      mask[n] = air ? 0 : 1;
      const z = air ? [0, 0, 0, 50] : [3 * rng.normal(), 2 * rng.normal(), rng.normal(), 0];
      for (let c = 0; c < C; c++) map[c * N + n] = z.reduce((s, zk, k) => s + zk * dirs[k]![c]!, 0);
    }
    const plain = pcaRgb(map, [1, C, D, H, W], [4, 4, 4]);
    expect(absCos(plain.pca.components[0]!, dirs[3]!)).toBeGreaterThan(0.99);
    const masked = pcaRgb(map, [1, C, D, H, W], [4, 4, 4], { mask });
    const inside = [...mask.keys()].filter((n) => mask[n]);
    const sub = new Float32Array(C * inside.length);
    for (let c = 0; c < C; c++) inside.forEach((n, m) => (sub[c * inside.length + m] = map[c * N + n]!));
    const ref = principalComponents(sub, C, inside.length, 3);
    for (let k = 0; k < 3; k++) expect(1 - absCos(masked.pca.components[k]!, ref.components[k]!)).toBeLessThan(1e-10);
    expect(absCos(masked.pca.components[0]!, dirs[3]!)).toBeLessThan(0.05);
    expect(masked.rgb.length).toBe(3 * N);
  });
});
