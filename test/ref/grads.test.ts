import { describe, it, expect } from 'vitest';
import { type Arr, arr, makeRng, rand, randn } from './array';
import { checkVjp } from './finite-diff';
import {
  type MatmulOpts, add, concat, crossEntropySoft, gelu, layerNorm, logSoftmax, matmul, mean, mul,
  permute, reshape, scale, slice, softmax, sub, sum,
} from './ops';
import {
  addBackward, broadcastBackward, concatBackward, crossEntropySoftBackward, geluBackward,
  layerNormBackward, logSoftmaxBackward, matmulBackward, meanBackward, mulBackward, permuteBackward,
  reshapeBackward, scaleBackward, sliceBackward, softmaxBackward, subBackward, sumBackward,
} from './grads';

const TOL = 1e-6;

/** Largest FD relative error seen per op name (printed at the end for the report). */
const worst = new Map<string, number>();
function expectOk(name: string, errs: number[]): void {
  worst.set(name, Math.max(worst.get(name) ?? 0, ...errs));
  expect(errs.length).toBeGreaterThan(0);
  for (const e of errs) expect(e).toBeLessThan(TOL);
}

describe('checkVjp itself', () => {
  it('rejects a wrong VJP (so the checks below can fail)', () => {
    const rng = makeRng(100);
    // gelu with a WRONG derivative (identity: dx = g)
    const wrong = checkVjp({
      f: ([x]) => gelu(x!),
      inputs: [randn([7], rng)],
      vjp: (_, g) => [g],
      rng,
    });
    expect(wrong[0]!).toBeGreaterThan(1e-2);
    // a VJP that is off by a factor 1.001 must also be caught
    const slightly = checkVjp({
      f: ([x]) => gelu(x!),
      inputs: [randn([5], rng)],
      vjp: ([x], g) => [scale(geluBackward(x!, g), 1.001)],
      rng,
    });
    expect(slightly[0]!).toBeGreaterThan(1e-4);
    expect(slightly[0]!).toBeLessThan(1e-2);
    // wrong gradient shape throws
    expect(() =>
      checkVjp({ f: ([x]) => sum(x!, []), inputs: [randn([2, 3], rng)], vjp: () => [arr([3, 2])], rng }),
    ).toThrow();
    // random-subset path for big inputs still passes for the right VJP
    const big = checkVjp({ f: ([x]) => gelu(x!), inputs: [randn([30000], rng, 2)], vjp: ([x], g) => [geluBackward(x!, g)], rng });
    expectOk('gelu', big);
  });
});

describe('matmul VJP', () => {
  const cases: { name: string; a: number[]; b: number[]; opts: MatmulOpts; bias?: number }[] = [
    { name: '2x3·3x2', a: [2, 3], b: [3, 2], opts: {} },
    { name: '1x1·1x1', a: [1, 1], b: [1, 1], opts: {} },
    { name: 'transA 5x3ᵀ·5x7', a: [5, 3], b: [5, 7], opts: { transA: true } },
    { name: 'transB 3x5·7x5ᵀ', a: [3, 5], b: [7, 5], opts: { transB: true } },
    { name: 'both trans', a: [5, 3], b: [7, 5], opts: { transA: true, transB: true } },
    { name: 'batched', a: [2, 3, 4, 5], b: [2, 3, 5, 7], opts: {} },
    { name: 'batched transA/transB', a: [3, 5, 1], b: [3, 7, 5], opts: { transA: true, transB: true } },
    { name: 'shared 2-D b + bias', a: [3, 5, 7], b: [7, 4], opts: {}, bias: 4 },
    { name: 'shared 2-D bᵀ + bias (linear layer)', a: [2, 3, 5], b: [7, 5], opts: { transB: true }, bias: 7 },
    { name: 'broadcast batch dims', a: [2, 1, 3, 5], b: [3, 5, 1], opts: {} },
    { name: '2-D a with batched b', a: [3, 5], b: [4, 5, 2], opts: {}, bias: 2 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const rng = makeRng(c.name.length * 31 + c.a.length);
      const inputs = [randn(c.a, rng), randn(c.b, rng)];
      if (c.bias !== undefined) inputs.push(randn([c.bias], rng));
      const withBias = (ins: Arr[]): MatmulOpts => ({ ...c.opts, bias: ins[2] ?? null });
      const errs = checkVjp({
        f: (ins) => matmul(ins[0]!, ins[1]!, withBias(ins)),
        inputs,
        vjp: (ins, g) => {
          const r = matmulBackward(ins[0]!, ins[1]!, g, withBias(ins));
          return c.bias !== undefined ? [r.da, r.db, r.dbias!] : [r.da, r.db];
        },
        rng,
      });
      expect(errs.length).toBe(inputs.length);
      expectOk('matmul', errs);
    });
  }

  it('db of a shared 2-D b equals the batch sum of per-batch db', () => {
    const rng = makeRng(5);
    const a = randn([3, 2, 4], rng);
    const b = randn([4, 5], rng);
    const g = randn([3, 2, 5], rng);
    const { db } = matmulBackward(a, b, g);
    const flat = matmulBackward(reshape(a, [6, 4]), b, reshape(g, [6, 5])).db;
    expect(Array.from(db.data).map((v, i) => Math.abs(v - flat.data[i]!)).every((d) => d < 1e-12)).toBe(true);
  });
});

describe('elementwise VJPs', () => {
  const shapes: [number[], number[]][] = [
    [[2, 1, 3], [4, 3]],
    [[5], [1]],
    [[3, 1], [1, 7]],
    [[], [3, 5]],
    [[1, 1], [1]],
    [[2, 3, 5], [2, 3, 5]],
  ];
  for (const [sa, sb] of shapes) {
    const tag = `[${sa.join(',')}] ⊕ [${sb.join(',')}]`;
    it(`add ${tag}`, () => {
      const rng = makeRng(11 + sa.length);
      const errs = checkVjp({
        f: ([a, b]) => add(a!, b!),
        inputs: [randn(sa, rng), randn(sb, rng)],
        vjp: ([a, b], g) => { const r = addBackward(a!.shape, b!.shape, g); return [r.da, r.db]; },
        rng,
      });
      expectOk('add', errs);
    });
    it(`sub ${tag}`, () => {
      const rng = makeRng(12 + sb.length);
      const errs = checkVjp({
        f: ([a, b]) => sub(a!, b!),
        inputs: [randn(sa, rng), randn(sb, rng)],
        vjp: ([a, b], g) => { const r = subBackward(a!.shape, b!.shape, g); return [r.da, r.db]; },
        rng,
      });
      expectOk('sub', errs);
    });
    it(`mul ${tag}`, () => {
      const rng = makeRng(13 + sa.length);
      const errs = checkVjp({
        f: ([a, b]) => mul(a!, b!),
        inputs: [randn(sa, rng), randn(sb, rng)],
        vjp: ([a, b], g) => { const r = mulBackward(a!, b!, g); return [r.da, r.db]; },
        rng,
      });
      expectOk('mul', errs);
    });
  }

  it('broadcastBackward sums over stretched and leading dims', () => {
    const g = arr([2, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const r = broadcastBackward(g, [2, 1, 3]);
    expect(r.shape).toEqual([2, 1, 3]);
    expect(Array.from(r.data)).toEqual([5, 7, 9, 17, 19, 21]);
    const r2 = broadcastBackward(g, [3]);
    expect(Array.from(r2.data)).toEqual([22, 26, 30]);
  });

  it('scale', () => {
    const rng = makeRng(14);
    expectOk('scale', checkVjp({ f: ([x]) => scale(x!, -2.5), inputs: [randn([3, 5], rng)], vjp: (_, g) => [scaleBackward(g, -2.5)], rng }));
  });

  for (const n of [1, 3, 5, 7, 64]) {
    it(`gelu n=${n}`, () => {
      const rng = makeRng(15 + n);
      const errs = checkVjp({ f: ([x]) => gelu(x!), inputs: [rand([n], rng, -6, 6)], vjp: ([x], g) => [geluBackward(x!, g)], rng });
      expectOk('gelu', errs);
    });
  }
});

describe('layerNorm VJP', () => {
  const eps = 1e-5;
  const cases: { shape: number[]; w: boolean; b: boolean }[] = [
    { shape: [3, 5], w: false, b: false },
    { shape: [2, 3, 7], w: true, b: true },
    { shape: [4, 1], w: true, b: true },
    { shape: [1, 3], w: true, b: false },
    { shape: [5, 4], w: false, b: true },
    { shape: [64], w: true, b: true },
  ];
  for (const c of cases) {
    it(`[${c.shape.join(',')}] weight=${c.w} bias=${c.b}`, () => {
      const rng = makeRng(20 + c.shape.length * 7 + (c.w ? 1 : 0) + (c.b ? 2 : 0));
      const C = c.shape[c.shape.length - 1]!;
      const inputs = [randn(c.shape, rng, 2)];
      if (c.w) inputs.push(add(randn([C], rng, 0.5), arr([], [1])));
      if (c.b) inputs.push(randn([C], rng));
      const unpack = (ins: Arr[]): [Arr, Arr | null, Arr | null] => {
        let i = 1;
        const w = c.w ? ins[i++]! : null;
        const b = c.b ? ins[i++]! : null;
        return [ins[0]!, w, b];
      };
      const errs = checkVjp({
        f: (ins) => { const [x, w, b] = unpack(ins); return layerNorm(x, w, b, eps); },
        inputs,
        vjp: (ins, g) => {
          const [x, w, b] = unpack(ins);
          const r = layerNormBackward(x, w, b, g, eps);
          expect(r.dw !== undefined).toBe(c.w);
          expect(r.db !== undefined).toBe(c.b);
          return [r.dx, ...(r.dw ? [r.dw] : []), ...(r.db ? [r.db] : [])];
        },
        rng,
      });
      expect(errs.length).toBe(inputs.length);
      expectOk('layerNorm', errs);
    });
  }
});

describe('softmax / logSoftmax VJPs', () => {
  for (const shape of [[4, 7], [1, 1], [3, 1, 5], [2, 3]]) {
    it(`softmax [${shape.join(',')}]`, () => {
      const rng = makeRng(30 + shape.length);
      const errs = checkVjp({ f: ([x]) => softmax(x!), inputs: [randn(shape, rng, 2)], vjp: ([x], g) => [softmaxBackward(softmax(x!), g)], rng });
      expectOk('softmax', errs);
    });
    it(`logSoftmax [${shape.join(',')}]`, () => {
      const rng = makeRng(40 + shape.length);
      const errs = checkVjp({ f: ([x]) => logSoftmax(x!), inputs: [randn(shape, rng, 2)], vjp: ([x], g) => [logSoftmaxBackward(logSoftmax(x!), g)], rng });
      expectOk('logSoftmax', errs);
    });
  }
});

describe('reduction VJPs', () => {
  const cases: { shape: number[]; axes: number[]; keep: boolean }[] = [
    { shape: [3, 5], axes: [0], keep: false },
    { shape: [3, 5], axes: [1], keep: true },
    { shape: [2, 3, 7], axes: [0, 2], keep: false },
    { shape: [2, 3, 7], axes: [-1], keep: true },
    { shape: [5, 1, 3], axes: [], keep: false },
    { shape: [1], axes: [0], keep: false },
  ];
  for (const c of cases) {
    const tag = `[${c.shape.join(',')}] axes=[${c.axes.join(',')}] keep=${c.keep}`;
    it(`sum ${tag}`, () => {
      const rng = makeRng(50 + c.shape.length);
      const errs = checkVjp({ f: ([x]) => sum(x!, c.axes, c.keep), inputs: [randn(c.shape, rng)], vjp: ([x], g) => [sumBackward(g, x!.shape, c.axes, c.keep)], rng });
      expectOk('sum', errs);
    });
    it(`mean ${tag}`, () => {
      const rng = makeRng(60 + c.shape.length);
      const errs = checkVjp({ f: ([x]) => mean(x!, c.axes, c.keep), inputs: [randn(c.shape, rng)], vjp: ([x], g) => [meanBackward(g, x!.shape, c.axes, c.keep)], rng });
      expectOk('mean', errs);
    });
  }
});

describe('shape op VJPs', () => {
  it('reshape', () => {
    const rng = makeRng(70);
    expectOk('reshape', checkVjp({ f: ([x]) => reshape(x!, [5, -1]), inputs: [randn([3, 5], rng)], vjp: ([x], g) => [reshapeBackward(g, x!.shape)], rng }));
  });

  for (const perm of [[1, 0], [2, 0, 1], [0, 2, 1, 3], [0]]) {
    it(`permute [${perm.join(',')}]`, () => {
      const rng = makeRng(71 + perm.length);
      const shape = [3, 5, 2, 7].slice(0, perm.length);
      const errs = checkVjp({ f: ([x]) => permute(x!, perm), inputs: [randn(shape, rng)], vjp: (_, g) => [permuteBackward(g, perm)], rng });
      expectOk('permute', errs);
    });
  }

  const slices: { shape: number[]; s: number[]; e: number[] }[] = [
    { shape: [5, 7], s: [1, 2], e: [4, 7] },
    { shape: [3, 5, 2], s: [0, 1, 1], e: [3, 4, 2] },
    { shape: [7], s: [3], e: [4] },
  ];
  for (const c of slices) {
    it(`slice [${c.shape.join(',')}] [${c.s.join(',')}]→[${c.e.join(',')}]`, () => {
      const rng = makeRng(80 + c.shape.length);
      const errs = checkVjp({
        f: ([x]) => slice(x!, c.s, c.e),
        inputs: [randn(c.shape, rng)],
        vjp: ([x], g) => [sliceBackward(g, x!.shape, c.s, c.e)],
        rng,
      });
      expectOk('slice', errs);
    });
  }

  for (const axis of [0, 1, -1]) {
    it(`concat axis=${axis}`, () => {
      const rng = makeRng(90 + axis);
      const shapes = axis === 0 ? [[1, 3, 2], [3, 3, 2], [5, 3, 2]] : axis === 1 ? [[2, 1, 3], [2, 5, 3]] : [[3, 2, 1], [3, 2, 7], [3, 2, 3]];
      const inputs = shapes.map((s) => randn(s, rng));
      const errs = checkVjp({ f: (xs) => concat(xs, axis), inputs, vjp: (xs, g) => concatBackward(g, xs.map((x) => x.shape), axis), rng });
      expect(errs.length).toBe(inputs.length);
      expectOk('concat', errs);
    });
  }
});

describe('crossEntropySoft VJP', () => {
  const cases: { N: number; C: number; normalized: boolean }[] = [
    { N: 4, C: 7, normalized: true },
    { N: 1, C: 1, normalized: true },
    { N: 3, C: 5, normalized: false },
    { N: 5, C: 3, normalized: true },
  ];
  for (const c of cases) {
    it(`N=${c.N} C=${c.C} ${c.normalized ? 'probability' : 'unnormalised'} targets`, () => {
      const rng = makeRng(100 + c.N * 10 + c.C);
      const logits = randn([c.N, c.C], rng, 2);
      // DINO-style: targets are the teacher's softmax (sharpened); also test arbitrary targets
      const targets = c.normalized ? softmax(randn([c.N, c.C], rng, 3)) : rand([c.N, c.C], rng, -0.5, 1.5);
      const errs = checkVjp({
        f: ([l, t]) => arr([], [crossEntropySoft(l!, t!)]),
        inputs: [logits, targets],
        vjp: ([l, t], g) => {
          const r = crossEntropySoftBackward(l!, t!, g.data[0]!);
          return [r.dlogits, r.dtargets];
        },
        rng,
      });
      expectOk('crossEntropySoft', errs);
    });
  }
});

describe('report', () => {
  it('worst FD relative error per op (all < 1e-6)', () => {
    const rows = [...worst.entries()].map(([k, v]) => `${k.padEnd(18)} ${v.toExponential(2)}`);
    console.log(`worst checkVjp relative error per op:\n${rows.join('\n')}`);
    expect(worst.size).toBeGreaterThan(10);
    for (const v of worst.values()) expect(v).toBeLessThan(TOL);
  });
});
