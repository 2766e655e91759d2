import { describe, it, expect } from 'vitest';
import { type Arr, allFinite, arr, makeRng, maxRelError, numel, randn, strides } from './array';
import {
  add, broadcastTo, concat, crossEntropySoft, erf, erfc, gelu, layerNorm, logSoftmax, matmul,
  mean, mul, permute, reshape, scale, slice, softmax, sub, sum,
} from './ops';

const at = (x: Arr, ...idx: number[]): number => {
  const st = strides(x.shape);
  return x.data[idx.reduce((o, v, d) => o + v * st[d]!, 0)]!;
};

/** Independent naive 2-D matmul for cross-checking the strided implementation. */
function naiveMatmul(A: number[][], B: number[][]): number[][] {
  return A.map((row) => B[0]!.map((_, n) => row.reduce((s, v, k) => s + v * B[k]![n]!, 0)));
}
const toRows = (x: Arr, off: number, R: number, C: number): number[][] =>
  Array.from({ length: R }, (_, r) => Array.from(x.data.subarray(off + r * C, off + (r + 1) * C)));
const transpose = (A: number[][]): number[][] => A[0]!.map((_, j) => A.map((row) => row[j]!));

describe('array helpers', () => {
  it('numel, strides, arr', () => {
    expect(numel([2, 3, 4])).toBe(24);
    expect(numel([])).toBe(1);
    expect(strides([2, 3, 4])).toEqual([12, 4, 1]);
    expect(() => arr([2, 2], [1, 2, 3])).toThrow();
  });

  it('rng is deterministic and roughly standard normal', () => {
    const a = randn([20000], makeRng(7));
    const b = randn([20000], makeRng(7));
    const c = randn([20000], makeRng(8));
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(maxRelError(a.data, c.data)).toBeGreaterThan(0.1);
    const m = a.data.reduce((s, v) => s + v, 0) / a.data.length;
    const v = a.data.reduce((s, x) => s + (x - m) ** 2, 0) / a.data.length;
    expect(Math.abs(m)).toBeLessThan(0.03);
    expect(Math.abs(v - 1)).toBeLessThan(0.05);
  });

  it('maxRelError is relative to the largest expected magnitude', () => {
    expect(maxRelError([1, 2.002], [1, 2])).toBeCloseTo(0.001, 12);
    expect(maxRelError([0.011, 100], [0.01, 100])).toBeCloseTo(1e-5, 12);
    expect(maxRelError([1, 2], [1, 2])).toBe(0);
    expect(maxRelError([1, NaN], [1, 2])).toBe(Infinity);
    expect(maxRelError([1], [1, 2])).toBe(Infinity);
    expect(allFinite([1, 2, 3])).toBe(true);
    expect(allFinite([1, Infinity])).toBe(false);
    expect(allFinite([NaN])).toBe(false);
  });
});

describe('matmul', () => {
  const A = arr([2, 3], [1, 2, 3, 4, 5, 6]);
  const B = arr([3, 2], [7, 8, 9, 10, 11, 12]);

  it('2×3 · 3×2 by hand', () => {
    const c = matmul(A, B);
    expect(c.shape).toEqual([2, 2]);
    expect(Array.from(c.data)).toEqual([58, 64, 139, 154]);
  });

  it('transA / transB / bias', () => {
    const At = permute(A, [1, 0]);
    const Bt = permute(B, [1, 0]);
    const expected = [58, 64, 139, 154];
    expect(Array.from(matmul(At, B, { transA: true }).data)).toEqual(expected);
    expect(Array.from(matmul(A, Bt, { transB: true }).data)).toEqual(expected);
    expect(Array.from(matmul(At, Bt, { transA: true, transB: true }).data)).toEqual(expected);
    const withBias = matmul(A, B, { bias: arr([2], [0.5, -1]) });
    expect(Array.from(withBias.data)).toEqual([58.5, 63, 139.5, 153]);
    expect(() => matmul(A, B, { bias: arr([3]) })).toThrow();
    expect(() => matmul(A, A)).toThrow();
  });

  it('batched, shared 2-D b, and broadcast batch dims match a naive loop', () => {
    const rng = makeRng(1);
    const a = randn([2, 3, 4, 5], rng);
    const b = randn([2, 3, 5, 7], rng);
    const c = matmul(a, b);
    expect(c.shape).toEqual([2, 3, 4, 7]);
    for (let bi = 0; bi < 6; bi++) {
      const ref = naiveMatmul(toRows(a, bi * 20, 4, 5), toRows(b, bi * 35, 5, 7)).flat();
      expect(maxRelError(c.data.subarray(bi * 28, bi * 28 + 28), ref)).toBeLessThan(1e-14);
    }
    // shared 2-D weight, transposed (like x·Wᵀ)
    const w = randn([7, 5], rng);
    const c2 = matmul(a, w, { transB: true });
    expect(c2.shape).toEqual([2, 3, 4, 7]);
    const wt = transpose(toRows(w, 0, 7, 5));
    for (let bi = 0; bi < 6; bi++) {
      const ref = naiveMatmul(toRows(a, bi * 20, 4, 5), wt).flat();
      expect(maxRelError(c2.data.subarray(bi * 28, bi * 28 + 28), ref)).toBeLessThan(1e-14);
    }
    // broadcast batch: [2,1] × [3] → [2,3]
    const a3 = randn([2, 1, 4, 5], rng);
    const b3 = randn([3, 5, 2], rng);
    const c3 = matmul(a3, b3);
    expect(c3.shape).toEqual([2, 3, 4, 2]);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        const ref = naiveMatmul(toRows(a3, i * 20, 4, 5), toRows(b3, j * 10, 5, 2)).flat();
        const o = (i * 3 + j) * 8;
        expect(maxRelError(c3.data.subarray(o, o + 8), ref)).toBeLessThan(1e-14);
      }
    }
  });
});

describe('elementwise', () => {
  it('broadcasting [2,1,3] + [4,3] → [2,4,3]', () => {
    const a = arr([2, 1, 3], [1, 2, 3, 10, 20, 30]);
    const b = arr([4, 3], Array.from({ length: 12 }, (_, i) => 100 * i));
    const c = add(a, b);
    expect(c.shape).toEqual([2, 4, 3]);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 4; j++) {
        for (let k = 0; k < 3; k++) expect(at(c, i, j, k)).toBe(at(a, i, 0, k) + at(b, j, k));
      }
    }
    expect(at(c, 1, 3, 2)).toBe(30 + 1100);
    const d = sub(a, b);
    const e = mul(b, a);
    expect(d.shape).toEqual([2, 4, 3]);
    expect(at(d, 1, 2, 0)).toBe(10 - 600);
    expect(at(e, 0, 3, 1)).toBe(2 * 1000);
    expect(() => add(arr([2, 3]), arr([4, 3]))).toThrow();
  });

  it('scalar and column broadcasts, scale, broadcastTo', () => {
    const s = arr([], [2]);
    const x = arr([2, 2], [1, 2, 3, 4]);
    expect(Array.from(mul(s, x).data)).toEqual([2, 4, 6, 8]);
    const col = arr([2, 1], [10, 20]);
    expect(Array.from(add(x, col).data)).toEqual([11, 12, 23, 24]);
    expect(Array.from(scale(x, -0.5).data)).toEqual([-0.5, -1, -1.5, -2]);
    const bt = broadcastTo(arr([3], [1, 2, 3]), [2, 3]);
    expect(Array.from(bt.data)).toEqual([1, 2, 3, 1, 2, 3]);
  });
});

describe('erf / gelu', () => {
  it('erf matches known values to ~1e-15', () => {
    const cases: [number, number][] = [
      [0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527],
      [3, 0.9999779095030014], [-1.5, -0.9661051464753108],
      [0.1, 0.11246291601828489], [2.4999, 0.99959283009966655], [2.5, 0.99959304798255504],
      [4, 0.9999999845827421], [6, 0.99999999999999998], [1e-10, 1.1283791670955126e-10],
    ];
    for (const [x, v] of cases) {
      expect(Math.abs(erf(x) - v) / Math.abs(v)).toBeLessThan(2e-15);
      expect(erf(-x)).toBe(-erf(x));
    }
    expect(erf(0)).toBe(0);
    expect(erf(40)).toBe(1);
    expect(erf(-Infinity)).toBe(-1);
  });

  it('erfc is relatively accurate in the tail', () => {
    const cases: [number, number][] = [
      [-2, 1.9953222650189527], [0.5, 0.47950012218695346], [0.99, 0.1614919304446302],
      [1, 0.15729920705028513], [2, 0.0046777349810472658], [3, 2.2090496998585441e-5],
      [5, 1.5374597944280349e-12], [10, 2.0884875837625448e-45], [20, 5.3958656116079009e-176],
    ];
    for (const [x, v] of cases) expect(Math.abs(erfc(x) - v) / v).toBeLessThan(5e-15);
  });

  it('exact gelu values (including the far negative tail)', () => {
    const xs = [1, -1, 0.5, -3, -10, 4, 0];
    const expected = [
      0.84134474606854295, -0.15865525393145705, 0.34573123063700655, -0.0040496940948902836,
      -7.6198530241605261e-23, 3.9998733150326675, 0,
    ];
    const y = gelu(arr([7], xs));
    for (let i = 0; i < xs.length; i++) {
      const e = expected[i]!;
      expect(Math.abs(y.data[i]! - e)).toBeLessThanOrEqual(1e-14 * Math.abs(e));
    }
  });
});

describe('softmax / layerNorm', () => {
  it('softmax known row, rows sum to 1, large logits stay finite', () => {
    const y = softmax(arr([1, 3], [1, 2, 3]));
    expect(maxRelError(y.data, [0.09003057317038046, 0.24472847105479764, 0.6652409557748219])).toBeLessThan(1e-15);
    const x = randn([5, 7], makeRng(3), 4);
    const p = softmax(x);
    for (let r = 0; r < 5; r++) {
      let s = 0;
      for (let c = 0; c < 7; c++) {
        expect(p.data[r * 7 + c]!).toBeGreaterThan(0);
        s += p.data[r * 7 + c]!;
      }
      expect(Math.abs(s - 1)).toBeLessThan(1e-14);
    }
    const big = softmax(arr([2], [1000, 1001]));
    expect(allFinite(big.data)).toBe(true);
    expect(big.data[1]! / big.data[0]!).toBeCloseTo(Math.E, 12);
  });

  it('logSoftmax = log(softmax) and is shift invariant', () => {
    const x = randn([4, 6], makeRng(4), 3);
    const ls = logSoftmax(x);
    expect(maxRelError(ls.data, softmax(x).data.map(Math.log))).toBeLessThan(1e-14);
    const shifted = logSoftmax(add(x, arr([], [500])));
    expect(maxRelError(shifted.data, ls.data)).toBeLessThan(1e-12);
  });

  it('layerNorm: hand case, zero-mean / unit-variance rows, affine', () => {
    const y = layerNorm(arr([1, 4], [1, 2, 3, 4]), null, null);
    const d = Math.sqrt(1.25 + 1e-5);
    expect(maxRelError(y.data, [-1.5 / d, -0.5 / d, 0.5 / d, 1.5 / d])).toBeLessThan(1e-15);

    const x = randn([6, 9], makeRng(5), 3);
    const n = layerNorm(x, null, null, 0);
    for (let r = 0; r < 6; r++) {
      const row = n.data.subarray(r * 9, r * 9 + 9);
      const m = row.reduce((s, v) => s + v, 0) / 9;
      const v = row.reduce((s, q) => s + (q - m) ** 2, 0) / 9; // biased
      expect(Math.abs(m)).toBeLessThan(1e-14);
      expect(Math.abs(v - 1)).toBeLessThan(1e-13);
    }
    const w = randn([9], makeRng(6));
    const b = randn([9], makeRng(7));
    const yAff = layerNorm(x, w, b, 0);
    expect(maxRelError(yAff.data, add(mul(n, w), b).data)).toBeLessThan(1e-15);
  });
});

describe('reductions', () => {
  const x = arr([2, 3], [1, 2, 3, 4, 5, 6]);
  it('sum / mean over axes, keepDims, all', () => {
    expect(sum(x, [0])).toEqual({ data: new Float64Array([5, 7, 9]), shape: [3] });
    expect(sum(x, [1], true)).toEqual({ data: new Float64Array([6, 15]), shape: [2, 1] });
    expect(sum(x, [-1]).shape).toEqual([2]);
    expect(sum(x, [])).toEqual({ data: new Float64Array([21]), shape: [] });
    expect(sum(x, [], true).shape).toEqual([1, 1]);
    expect(Array.from(mean(x, [1]).data)).toEqual([2, 5]);
    expect(Array.from(mean(x, [0, 1]).data)).toEqual([3.5]);
    expect(mean(x, [0], true).shape).toEqual([1, 3]);
    const y = randn([3, 4, 5], makeRng(8));
    const s02 = sum(y, [0, 2]);
    let ref = 0;
    for (let i = 0; i < 3; i++) for (let k = 0; k < 5; k++) ref += at(y, i, 1, k);
    expect(Math.abs(s02.data[1]! - ref)).toBeLessThan(1e-13);
    expect(() => sum(x, [2])).toThrow();
  });
});

describe('shape ops', () => {
  it('reshape (with -1)', () => {
    const x = arr([2, 3], [1, 2, 3, 4, 5, 6]);
    expect(reshape(x, [3, -1]).shape).toEqual([3, 2]);
    expect(Array.from(reshape(x, [6]).data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(() => reshape(x, [4, 2])).toThrow();
  });

  it('permute moves elements and round-trips', () => {
    const x = randn([2, 3, 5], makeRng(9));
    const p = permute(x, [2, 0, 1]);
    expect(p.shape).toEqual([5, 2, 3]);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 5; k++) expect(at(p, k, i, j)).toBe(at(x, i, j, k));
    const back = permute(p, [1, 2, 0]);
    expect(back.shape).toEqual(x.shape);
    expect(Array.from(back.data)).toEqual(Array.from(x.data));
    expect(Array.from(permute(arr([2, 3], [1, 2, 3, 4, 5, 6]), [1, 0]).data)).toEqual([1, 4, 2, 5, 3, 6]);
    expect(() => permute(x, [0, 0, 1])).toThrow();
  });

  it('slice by hand and slice/concat round trip', () => {
    const x = arr([3, 4], Array.from({ length: 12 }, (_, i) => i));
    const s = slice(x, [1, 1], [3, 3]);
    expect(s.shape).toEqual([2, 2]);
    expect(Array.from(s.data)).toEqual([5, 6, 9, 10]);
    expect(slice(x, [0, 2], [3, 2]).shape).toEqual([3, 0]);
    expect(() => slice(x, [0, 0], [4, 1])).toThrow();

    const y = randn([3, 7, 2], makeRng(10));
    const parts = [slice(y, [0, 0, 0], [3, 2, 2]), slice(y, [0, 2, 0], [3, 3, 2]), slice(y, [0, 3, 0], [3, 7, 2])];
    const z = concat(parts, 1);
    expect(z.shape).toEqual([3, 7, 2]);
    expect(Array.from(z.data)).toEqual(Array.from(y.data));
    const rows = concat([slice(y, [2, 0, 0], [3, 7, 2]), slice(y, [0, 0, 0], [2, 7, 2])], 0);
    expect(at(rows, 0, 4, 1)).toBe(at(y, 2, 4, 1));
    expect(at(rows, 2, 4, 1)).toBe(at(y, 1, 4, 1));
    const last = concat([arr([2, 1], [1, 2]), arr([2, 2], [3, 4, 5, 6])], -1);
    expect(Array.from(last.data)).toEqual([1, 3, 4, 2, 5, 6]);
    expect(() => concat([arr([2, 1]), arr([3, 1])], 1)).toThrow();
  });
});

describe('crossEntropySoft', () => {
  it('hand-computed value', () => {
    const logits = arr([2, 3], [1, 2, 3, 0.5, -1, 2]);
    const targets = arr([2, 3], [0.2, 0.3, 0.5, 1, 0, 0]);
    expect(Math.abs(crossEntropySoft(logits, targets) - 1.4244586305507685)).toBeLessThan(1e-14);
  });

  it('one-hot targets reduce to mean −log p[target]; equals entropy when targets = softmax', () => {
    const logits = randn([4, 5], makeRng(11), 2);
    const p = softmax(logits);
    const onehot = arr([4, 5]);
    const labels = [0, 3, 4, 1];
    labels.forEach((c, r) => (onehot.data[r * 5 + c] = 1));
    const ref = -labels.reduce((s, c, r) => s + Math.log(p.data[r * 5 + c]!), 0) / 4;
    expect(Math.abs(crossEntropySoft(logits, onehot) - ref)).toBeLessThan(1e-14);
    const entropy = -p.data.reduce((s, v) => s + v * Math.log(v), 0) / 4;
    expect(Math.abs(crossEntropySoft(logits, p) - entropy)).toBeLessThan(1e-14);
  });
});
