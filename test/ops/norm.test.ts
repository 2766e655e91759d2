/**
 * Row-wise ops on the GPU against the float64 references: layerNorm (with and without the affine
 * part), softmax and logSoftmax over the last axis, and soft-target cross entropy — forward and
 * every input gradient (x, weight, bias; logits and targets).
 *
 * Error model: one workgroup (64 lanes) per row, per-lane running sums then a tree, all in f32.
 * Row lengths cover C < 64, C = 64, C not a multiple of 64 and C ≫ 64; row counts cover the
 * layerNorm parameter-gradient chunking (64 rows per chunk) with a partial last chunk.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { checkOp, download, expectNoLeak, expectRel, printErrorTable, randnT, uniformT, upload } from '../support/compare';
import { type Arr, arr, makeRng, type Rng } from '../ref/array';
import * as R from '../ref/ops';
import * as G from '../ref/grads';
import { backward, crossEntropySoft, full, layerNorm, logSoftmax, ReefError, reshape, softmax, type Runtime, type Tensor } from '../../src/index';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('norm / softmax / cross entropy'));

// Bounds: a few times the worst error measured over the cases below (see the printed table).
const LN_FWD = 1e-6;
const LN_DX = 1e-6;
const LN_DPARAM = 1e-6;
const SOFTMAX_FWD = 6e-7;
const SOFTMAX_GRAD = 2e-6;
const CE_FWD = 6e-7;
const CE_GRAD = 2e-6;

// [rows..., C]
const LN_SHAPES: number[][] = [[1, 1], [1, 3], [5, 7], [3, 17], [2, 64], [7, 65], [130, 33], [3, 5, 127], [65, 300], [256, 384], [70001, 8]]; // the last: more rows than one grid dimension holds

describe('layerNorm', () => {
  // An offset of 3 (std 2): the two-pass mean/variance must not lose it. The error grows like
  // |mean|/std of a row (f32 rounding of x − mean, amplified by 1/σ); with 70001 rows some rows
  // would have a tiny sample σ, so tall cases are zero-mean.
  async function affineCase(shape: number[], seed: number, op: string): Promise<void> {
    const C = shape[shape.length - 1]!;
    const rng = makeRng(seed);
    const offset = shape[0]! > 1000 ? 0 : 3;
    const x = randnT(shape, rng, 2);
    for (let k = 0; k < x.data.length; k++) x.data[k] = Math.fround(x.data[k]! + offset);
    await checkOp(rt, {
      op,
      inputs: [x, randnT([C], rng, 1), randnT([C], rng, 1)],
      names: ['x', 'weight', 'bias'],
      rng,
      gpu: ([t, w, b]) => layerNorm(t!, w!, b!, 1e-5),
      ref: ([rx, rw, rb]) => R.layerNorm(rx!, rw!, rb!, 1e-5),
      vjp: ([rx, rw, rb], g) => {
        const r = G.layerNormBackward(rx!, rw!, rb!, g, 1e-5);
        return [r.dx, r.dw, r.db];
      },
      bound: LN_FWD,
      gradBound: [LN_DX, LN_DPARAM, LN_DPARAM],
    });
  }

  LN_SHAPES.forEach((shape, i) => {
    it(`affine [${shape}]`, () => affineCase(shape, 100 + i, 'layerNorm'));
  });

  // The one-row-per-invocation kernels (CPU adapters) on every shape, forced through REEF_LAYERNORM.
  [[1, 3], [130, 33], [65, 300], [3000, 48], [70001, 8]].forEach((shape, i) => {
    it(`affine [${shape}], one row per invocation`, async () => {
      process.env.REEF_LAYERNORM = 'rows';
      try {
        await affineCase(shape, 400 + i, 'layerNorm (row per invocation)');
      } finally {
        delete process.env.REEF_LAYERNORM;
      }
    });
  });

  [[1, 1], [5, 7], [7, 65], [3, 5, 127]].forEach((shape, i) => {
    it(`no affine [${shape}], eps 1e-3`, async () => {
      const rng = makeRng(150 + i);
      await checkOp(rt, {
        op: 'layerNorm (no affine)',
        inputs: [randnT(shape, rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => layerNorm(t!, null, null, 1e-3),
        ref: ([rx]) => R.layerNorm(rx!, null, null, 1e-3),
        vjp: ([rx], g) => [G.layerNormBackward(rx!, null, null, g, 1e-3).dx],
        bound: LN_FWD,
        gradBound: LN_DX,
      });
    });
  });

  it('only the weight requires grad', async () => {
    const rng = makeRng(170);
    await checkOp(rt, {
      op: 'layerNorm',
      inputs: [randnT([70, 9], rng), randnT([9], rng), randnT([9], rng)],
      names: ['x', 'weight', 'bias'],
      grad: [false, true, false],
      rng,
      gpu: ([t, w, b]) => layerNorm(t!, w!, b!),
      ref: ([rx, rw, rb]) => R.layerNorm(rx!, rw!, rb!),
      vjp: ([rx, rw, rb], g) => [undefined, G.layerNormBackward(rx!, rw!, rb!, g).dw],
      bound: LN_FWD,
      gradBound: LN_DPARAM,
    });
  });

  it('rejects mismatched parameters', () => {
    const x = upload(rt, randnT([3, 4], makeRng(1)));
    const w = upload(rt, randnT([5], makeRng(2)));
    const w4 = upload(rt, randnT([4], makeRng(3)));
    try {
      expect(() => layerNorm(x, w, w)).toThrow(ReefError);
      expect(() => layerNorm(x, w4, null)).toThrow(/both/);
    } finally {
      for (const t of [x, w, w4]) t.dispose();
    }
  });
});

const SM_SHAPES: number[][] = [[1, 1], [1, 7], [5, 3], [17, 33], [3, 64], [7, 65], [2, 3, 127], [33, 300], [4, 1000], [300, 190], [70001, 2]];

describe.each([
  ['softmax', softmax, R.softmax, G.softmaxBackward],
  ['logSoftmax', logSoftmax, R.logSoftmax, G.logSoftmaxBackward],
] as const)('%s', (name, gpuOp, refOp, refVjp) => {
  SM_SHAPES.forEach((shape, i) => {
    it(`[${shape}]`, async () => {
      const rng = makeRng(200 + i);
      await checkOp(rt, {
        op: name,
        inputs: [randnT(shape, rng, 3)],
        names: ['x'],
        rng,
        gpu: ([t]) => gpuOp(t!),
        ref: ([r]) => refOp(r!),
        vjp: ([r], g) => [refVjp(refOp(r!), g)],
        bound: SOFTMAX_FWD,
        gradBound: SOFTMAX_GRAD,
      });
    });
  });

  it('large logits (±80: exp would overflow without the max shift)', async () => {
    const rng = makeRng(260);
    await checkOp(rt, {
      op: `${name} (large logits)`,
      inputs: [uniformT([9, 77], rng, -80, 80)],
      names: ['x'],
      rng,
      gpu: ([t]) => gpuOp(t!),
      ref: ([r]) => refOp(r!),
      vjp: ([r], g) => [refVjp(refOp(r!), g)],
      bound: SOFTMAX_FWD,
      gradBound: SOFTMAX_GRAD,
    });
  });
});

/** Soft targets: rows of a softmax (sum to 1), or arbitrary non-negative weights (do not). */
function targets(shape: number[], rng: Rng, normalised: boolean): Arr {
  if (normalised) {
    const t = R.softmax(randnT(shape, rng, 2));
    for (let i = 0; i < t.data.length; i++) t.data[i] = Math.fround(t.data[i]!);
    return t;
  }
  return uniformT(shape, rng, 0, 1);
}

function refCE(x: Arr, t: Arr): Arr {
  const C = x.shape[x.shape.length - 1]!;
  const flat = (a: Arr) => R.reshape(a, [a.data.length / C, C]);
  return arr([], [R.crossEntropySoft(flat(x), flat(t))]);
}

function refCEVjp(x: Arr, t: Arr, g: number): Arr[] {
  const C = x.shape[x.shape.length - 1]!;
  const flat = (a: Arr) => R.reshape(a, [a.data.length / C, C]);
  const r = G.crossEntropySoftBackward(flat(x), flat(t), g);
  return [R.reshape(r.dlogits, x.shape), R.reshape(r.dtargets, x.shape)];
}

describe('crossEntropySoft', () => {
  const shapes: number[][] = [[1, 1], [1, 5], [3, 7], [17, 33], [7, 65], [2, 5, 17], [64, 300], [130, 1000], [70001, 2]];
  shapes.forEach((shape, i) => {
    for (const normalised of [true, false]) {
      it(`[${shape}] targets ${normalised ? 'sum to 1' : 'do not sum to 1'}`, async () => {
        const rng = makeRng(300 + 2 * i + (normalised ? 0 : 1));
        await checkOp(rt, {
          op: 'crossEntropySoft',
          inputs: [randnT(shape, rng, 3), targets(shape, rng, normalised)],
          names: ['logits', 'targets'],
          rng,
          gpu: ([x, t]) => crossEntropySoft(x!, t!),
          ref: ([x, t]) => refCE(x!, t!),
          vjp: ([x, t], g) => refCEVjp(x!, t!, g.data[0]!),
          bound: CE_FWD,
          gradBound: CE_GRAD,
        });
      });
    }
  });

  it('backward(loss) seeds the gradient with 1; only logits require grad', async () => {
    const rng = makeRng(350);
    const xs = randnT([9, 13], rng, 2);
    const ts = targets([9, 13], rng, true);
    const x = upload(rt, xs, { requiresGrad: true });
    const t = upload(rt, ts);
    const loss = crossEntropySoft(x, t);
    try {
      expect(loss.shape).toEqual([]);
      expectRel('crossEntropySoft', 'forward', [await loss.item()], [R.crossEntropySoft(xs, ts)], CE_FWD);
      backward(loss);
      expectRel('crossEntropySoft', 'dlogits', await download(x.grad!), refCEVjp(xs, ts, 1)[0]!, CE_GRAD);
      expect(t.grad).toBeNull();
    } finally {
      x.grad?.dispose();
      for (const u of [x, t, loss]) u.dispose();
    }
  });

  it('targets computed on the GPU (softmax of z) get their gradient too; upstream gradient 0.75', async () => {
    // gradient flows into the targets through softmax: d/dz of CE(x, softmax(z))
    const rng = makeRng(360);
    const xs = randnT([6, 11], rng, 2);
    const zs = randnT([66], rng, 2);
    const x = upload(rt, xs, { requiresGrad: true });
    const z = upload(rt, zs, { requiresGrad: true });
    const live: Tensor[] = [x, z];
    try {
      const z2 = reshape(z, [6, 11]);
      const tt = softmax(z2);
      const loss = crossEntropySoft(x, tt);
      live.push(z2, tt, loss);
      const g = full(rt, [], 0.75);
      live.push(g);
      backward(loss, g);
      const t64 = R.softmax(R.reshape(zs, [6, 11]));
      const [dx, dt] = refCEVjp(xs, t64, 0.75);
      const dz = R.reshape(G.softmaxBackward(t64, dt!), [66]);
      expectRel('crossEntropySoft∘softmax', 'dlogits', await download(x.grad!), dx!, CE_GRAD);
      expectRel('crossEntropySoft∘softmax', 'dz', await download(z.grad!), dz, CE_GRAD);
    } finally {
      x.grad?.dispose();
      z.grad?.dispose();
      for (const u of live) u.dispose();
    }
  });

  it('rejects logits and targets of different shapes', () => {
    const x = upload(rt, randnT([3, 4], makeRng(1)));
    const t = upload(rt, randnT([4, 3], makeRng(2)));
    try {
      expect(() => crossEntropySoft(x, t)).toThrow(/3×4.*4×3/);
    } finally {
      x.dispose();
      t.dispose();
    }
  });
});

describe('memory', () => {
  it('inUse returns to its starting value after forward + backward of every op here', async () => {
    await expectNoLeak(rt, async () => {
      const rng = makeRng(400);
      await checkOp(rt, {
        op: 'layerNorm',
        inputs: [randnT([70, 9], rng), randnT([9], rng), randnT([9], rng)],
        names: ['x', 'weight', 'bias'],
        rng,
        gpu: ([t, w, b]) => layerNorm(t!, w!, b!),
        ref: ([rx, rw, rb]) => R.layerNorm(rx!, rw!, rb!),
        vjp: ([rx, rw, rb], g) => {
          const r = G.layerNormBackward(rx!, rw!, rb!, g);
          return [r.dx, r.dw, r.db];
        },
        bound: LN_FWD,
        gradBound: LN_DX,
      });
      await checkOp(rt, {
        op: 'layerNorm (no affine)',
        inputs: [randnT([7, 9], rng)],
        names: ['x'],
        rng,
        gpu: ([t]) => layerNorm(t!),
        ref: ([rx]) => R.layerNorm(rx!, null, null),
        vjp: ([rx], g) => [G.layerNormBackward(rx!, null, null, g).dx],
        bound: LN_FWD,
      });
      for (const [op, ref, vjp] of [[softmax, R.softmax, G.softmaxBackward], [logSoftmax, R.logSoftmax, G.logSoftmaxBackward]] as const) {
        await checkOp(rt, {
          op: op === softmax ? 'softmax' : 'logSoftmax',
          inputs: [randnT([7, 9], rng)],
          names: ['x'],
          rng,
          gpu: ([t]) => op(t!),
          ref: ([r]) => ref(r!),
          vjp: ([r], g) => [vjp(ref(r!), g)],
          bound: SOFTMAX_FWD,
        });
      }
      await checkOp(rt, {
        op: 'crossEntropySoft',
        inputs: [randnT([7, 9], rng), targets([7, 9], rng, true)],
        names: ['logits', 'targets'],
        rng,
        gpu: ([x, t]) => crossEntropySoft(x!, t!),
        ref: ([x, t]) => refCE(x!, t!),
        vjp: ([x, t], g) => refCEVjp(x!, t!, g.data[0]!),
        bound: CE_FWD,
      });
    });
  });
});
