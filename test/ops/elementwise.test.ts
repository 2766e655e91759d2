/**
 * Elementwise ops on the GPU against the float64 references: add/sub/mul/div with NumPy
 * broadcasting, scale (alpha·x + beta), neg and exact GELU — forward and every input gradient.
 *
 * Error model: forward results are one correctly rounded f32 operation per element (≤ 2⁻²⁴
 * relative), GELU adds the error of the shader's f32 erf (≈1e-7). Gradients of broadcast inputs
 * are sums over the broadcast axes (the reduce kernel: per-lane running sums, then a tree), whose
 * rounding error grows with the number of summed elements.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { awayFromZero, checkOp, download, expectNoLeak, expectRel, printErrorTable, randnT, upload } from '../support/compare';
import { type Arr, arr, makeRng } from '../ref/array';
import * as R from '../ref/ops';
import * as G from '../ref/grads';
import { checkVjp } from '../ref/finite-diff';
import { add, backward, div, gelu, mul, neg, ReefError, scale, sub, type Runtime, type Tensor } from '../../src/index';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('elementwise'));

/** Forward of add/sub/mul/div: one rounding per element. */
const BIN_FWD = 2e-7;
/** Gradients: a broadcast sum over up to ~4e3 elements in f32. */
const BIN_GRAD = 1e-6;
const SCALE_TOL = 3e-7;
const GELU_FWD = 3e-7;
const GELU_GRAD = 4e-7;
/** Largest absolute error of GELU per element on [-3, 3] (|gelu| ≤ 3 there). */
const GELU_ABS = 5e-7;

// float64 reference for division (test/ref/ops.ts has none): a/b broadcast, and its VJP.
function refDiv(a: Arr, b: Arr): Arr {
  const shape = R.broadcastShapes(a.shape, b.shape);
  const oa = R.viewOffsets(shape, 0, R.broadcastStrides(a.shape, shape));
  const ob = R.viewOffsets(shape, 0, R.broadcastStrides(b.shape, shape));
  const out = arr(shape);
  for (let i = 0; i < out.data.length; i++) out.data[i] = a.data[oa[i]!]! / b.data[ob[i]!]!;
  return out;
}
function refDivBackward(a: Arr, b: Arr, g: Arr): { da: Arr; db: Arr } {
  const ea = R.broadcastTo(a, g.shape);
  const eb = R.broadcastTo(b, g.shape);
  const ga = arr(g.shape);
  const gb = arr(g.shape);
  for (let i = 0; i < g.data.length; i++) {
    const bv = eb.data[i]!;
    ga.data[i] = g.data[i]! / bv;
    gb.data[i] = (-g.data[i]! * ea.data[i]!) / (bv * bv);
  }
  return { da: R.sumTo(ga, a.shape), db: R.sumTo(gb, b.shape) };
}

type BinName = 'add' | 'sub' | 'mul' | 'div';
const GPU_BIN: Record<BinName, (a: Tensor, b: Tensor) => Tensor> = { add, sub, mul, div };
const REF_BIN: Record<BinName, (a: Arr, b: Arr) => Arr> = { add: R.add, sub: R.sub, mul: R.mul, div: refDiv };
const REF_BIN_VJP: Record<BinName, (a: Arr, b: Arr, g: Arr) => { da: Arr; db: Arr }> = {
  add: (a, b, g) => G.addBackward(a.shape, b.shape, g),
  sub: (a, b, g) => G.subBackward(a.shape, b.shape, g),
  mul: (a, b, g) => G.mulBackward(a, b, g),
  div: refDivBackward,
};

const SHAPES: [number[], number[]][] = [
  [[1], [1]],
  [[17, 33], [17, 33]], // same shape: the kernel's non-broadcast path
  [[2, 1, 3], [4, 3]],
  [[5, 1], [1, 7]],
  [[3, 4], [1]],
  [[1], [3, 5]],
  [[7, 1, 5], [3, 1]],
  [[127], [1, 1, 127]],
  [[2, 1, 3, 1, 5], [7, 3, 4, 1]],
  [[1, 65, 1], [7, 1, 33]],
  [[127, 65, 33], [65, 1]], // large: 272k outputs, db sums 4191 elements each
];

describe('float64 reference for div (the one written here) passes a finite-difference check', () => {
  it('refDivBackward', () => {
    const rng = makeRng(9);
    const errs = checkVjp({
      f: ([a, b]) => refDiv(a!, b!),
      inputs: [R.add(awayFromZero([2, 1, 3], rng), arr([1], [0])), awayFromZero([4, 3], rng)],
      vjp: ([a, b], g) => {
        const r = refDivBackward(a!, b!, g);
        return [r.da, r.db];
      },
      rng,
    });
    for (const e of errs) expect(e).toBeLessThan(1e-6);
  });
});

describe.each((['add', 'sub', 'mul', 'div'] as BinName[]).map((n) => [n]))('%s', (name) => {
  SHAPES.forEach(([sa, sb], i) => {
    it(`[${sa}] ${name} [${sb}]`, async () => {
      const rng = makeRng(100 + i);
      const a = randnT(sa, rng);
      const b = name === 'div' ? awayFromZero(sb, rng) : randnT(sb, rng);
      await checkOp(rt, {
        op: name,
        inputs: [a, b],
        names: ['a', 'b'],
        rng,
        gpu: ([ta, tb]) => GPU_BIN[name](ta!, tb!),
        ref: ([ra, rb]) => REF_BIN[name](ra!, rb!),
        vjp: ([ra, rb], g) => {
          const r = REF_BIN_VJP[name](ra!, rb!, g);
          return [r.da, r.db];
        },
        bound: BIN_FWD,
        gradBound: BIN_GRAD,
      });
    });
  });

  it(`only b requires grad ([5,1] ${name} [1,7])`, async () => {
    const rng = makeRng(150);
    const a = randnT([5, 1], rng);
    const b = name === 'div' ? awayFromZero([1, 7], rng) : randnT([1, 7], rng);
    await checkOp(rt, {
      op: name,
      inputs: [a, b],
      names: ['a', 'b'],
      grad: [false, true],
      rng,
      gpu: ([ta, tb]) => GPU_BIN[name](ta!, tb!),
      ref: ([ra, rb]) => REF_BIN[name](ra!, rb!),
      vjp: ([ra, rb], g) => [undefined, REF_BIN_VJP[name](ra!, rb!, g).db],
      bound: BIN_FWD,
      gradBound: BIN_GRAD,
    });
  });
});

describe('an input used twice accumulates both gradients', () => {
  it.each([['add'], ['mul']])('%s(x, x)', async (name) => {
    const rng = makeRng(160);
    const x = name === 'mul' ? randnT([7, 5], rng) : randnT([7, 5], rng);
    await checkOp(rt, {
      op: `${name}(x,x)`,
      inputs: [x],
      names: ['x'],
      rng,
      gpu: ([t]) => (name === 'add' ? add(t!, t!) : mul(t!, t!)),
      ref: ([r]) => (name === 'add' ? R.add(r!, r!) : R.mul(r!, r!)),
      vjp: ([r], g) => {
        const v = name === 'add' ? G.addBackward(r!.shape, r!.shape, g) : G.mulBackward(r!, r!, g);
        return [R.add(v.da, v.db)];
      },
      bound: BIN_FWD,
      gradBound: BIN_GRAD,
    });
  });
});

describe('gradient accumulation', () => {
  it('two backward passes through add(x, y) (whose two gradients share one buffer) accumulate 2·g', async () => {
    const rng = makeRng(170);
    const xs = randnT([5, 7], rng);
    const ys = randnT([5, 7], rng);
    const gs = randnT([5, 7], rng);
    const x = upload(rt, xs, { requiresGrad: true });
    const y = upload(rt, ys, { requiresGrad: true });
    const g = upload(rt, gs);
    try {
      for (let pass = 0; pass < 2; pass++) {
        const s = add(x, y);
        backward(s, g);
        s.dispose();
      }
      const want = R.scale(gs, 2);
      expectRel('add', 'dx (2 passes)', await download(x.grad!), want, 0);
      expectRel('add', 'dy (2 passes)', await download(y.grad!), want, 0);
    } finally {
      x.grad?.dispose();
      y.grad?.dispose();
      for (const t of [x, y, g]) t.dispose();
    }
  });
});

describe('scale / neg', () => {
  const shapes = [[1], [3], [127], [5, 7, 33], [300, 257]];
  shapes.forEach((shape, i) => {
    it(`scale(x, -1.7, 0.3) [${shape}]`, async () => {
      const rng = makeRng(200 + i);
      await checkOp(rt, {
        op: 'scale',
        inputs: [randnT(shape, rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => scale(t!, -1.7, 0.3),
        ref: ([r]) => {
          const out = R.scale(r!, Math.fround(-1.7));
          for (let k = 0; k < out.data.length; k++) out.data[k] = out.data[k]! + Math.fround(0.3);
          return out;
        },
        vjp: (_, g) => [G.scaleBackward(g, Math.fround(-1.7))],
        bound: SCALE_TOL,
      });
    });
    it(`neg [${shape}]`, async () => {
      const rng = makeRng(250 + i);
      await checkOp(rt, {
        op: 'neg',
        inputs: [randnT(shape, rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => neg(t!),
        ref: ([r]) => R.scale(r!, -1),
        vjp: (_, g) => [G.scaleBackward(g, -1)],
        bound: 0,
        gradBound: 0,
      });
    });
  });
});

describe('gelu (exact, erf)', () => {
  const shapes = [[1], [7], [65, 33], [127, 5, 3], [300, 257]];
  shapes.forEach((shape, i) => {
    it(`gelu [${shape}]`, async () => {
      const rng = makeRng(300 + i);
      await checkOp(rt, {
        op: 'gelu',
        inputs: [randnT(shape, rng, 3)], // wide inputs: both tails and the |x| < 0.5 series branch
        names: ['x'],
        rng,
        gpu: ([t]) => gelu(t!),
        ref: ([r]) => R.gelu(r!),
        vjp: ([r], g) => [G.geluBackward(r!, g)],
        bound: GELU_FWD,
        gradBound: GELU_GRAD,
      });
    });
  });

  it('gelu on a dense grid over [-8, 8] (both erf branches, the branch point ±0.5·√2, tails)', async () => {
    const n = 4097;
    const xs = arr([n]);
    for (let i = 0; i < n; i++) xs.data[i] = Math.fround(-8 + (16 * i) / (n - 1));
    const rng = makeRng(399);
    await checkOp(rt, {
      op: 'gelu grid',
      inputs: [xs],
      names: ['x'],
      rng,
      gpu: ([t]) => gelu(t!),
      ref: ([r]) => R.gelu(r!),
      vjp: ([r], g) => [G.geluBackward(r!, g)],
      bound: GELU_FWD,
      gradBound: GELU_GRAD,
    });
  });

  it('gelu: absolute error per element stays at f32 level on [-3, 3]', async () => {
    // maxRelError is relative to the largest |expected|; this also bounds each element near 0.
    const n = 1201;
    const xs = arr([n]);
    for (let i = 0; i < n; i++) xs.data[i] = Math.fround(-3 + (6 * i) / (n - 1));
    const t = upload(rt, xs);
    const y = gelu(t);
    try {
      const got = await download(y);
      const want = R.gelu(xs);
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(got[i]! - want.data[i]!));
      if (process.env.REEF_TEST_VERBOSE) console.log(`[err] gelu abs ${worst.toExponential(3)}`);
      expect(worst).toBeLessThan(GELU_ABS);
    } finally {
      t.dispose();
      y.dispose();
    }
  });
});

describe('errors and memory', () => {
  it('broadcasting incompatible shapes throws, naming both shapes', () => {
    const a = upload(rt, randnT([3, 4], makeRng(1)));
    const b = upload(rt, randnT([5, 4], makeRng(2)));
    const c = upload(rt, randnT([2, 3], makeRng(3)));
    try {
      for (const f of [add, sub, mul, div]) {
        expect(() => f(a, b)).toThrow(ReefError);
        expect(() => f(a, b)).toThrow(/\[3, 4\].*\[5, 4\]/);
        expect(() => f(a, c)).toThrow(/do not broadcast/);
      }
    } finally {
      for (const t of [a, b, c]) t.dispose();
    }
  });

  it('inUse returns to its starting value after forward + backward of every op here', async () => {
    await expectNoLeak(rt, async () => {
      const rng = makeRng(500);
      const a = upload(rt, randnT([2, 1, 3], rng), { requiresGrad: true });
      const b = upload(rt, awayFromZero([4, 3], rng), { requiresGrad: true });
      const x = upload(rt, randnT([4, 3], rng), { requiresGrad: true });
      const all: Tensor[] = [a, b, x];
      try {
        const s1 = add(a, b);
        const s2 = sub(s1, x);
        const s3 = mul(s2, b);
        const s4 = div(s3, b);
        const n4 = neg(s4);
        const c4 = scale(n4, 0.5, 0.1);
        const s5 = gelu(c4);
        const s6 = add(x, x);
        const s7 = mul(s5, s6);
        all.push(s1, s2, s3, s4, n4, c4, s5, s6, s7);
        const g = upload(rt, randnT(s7.shape, rng));
        all.push(g);
        backward(s7, g);
        for (const t of [a, b, x]) expect(t.grad).not.toBeNull();
        await download(a.grad!);
      } finally {
        for (const t of [a, b, x]) t.grad?.dispose();
        for (const t of all) t.dispose();
      }
    });
  });
});
