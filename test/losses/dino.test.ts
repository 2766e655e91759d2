/**
 * DINO on the GPU against the float64 references (test/ref/losses.ts): row-wise L2 normalisation
 * (both layouts), the DINO head (forward, every parameter's gradient incl. the weight-normed
 * prototypes), the DINO loss and its student gradient (one tensor or globals + locals pieces), the
 * centred teacher softmax, the centre's EMA, Sinkhorn–Knopp, and bitwise-reproducible gradients.
 *
 * Error model: rows reduced by one 64-lane workgroup (or one invocation) in f32; loss terms summed
 * per row then over rows by the reduce kernel. Bounds are a few times the worst measured error.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { checkOp, download, expectNoLeak, expectRel, printErrorTable, randnT, roundTo, upload, expectDeterministicGrad } from '../support/compare';
import { type Arr, arr, makeRng, type Rng } from '../ref/array';
import * as L from '../ref/losses';
import { softmax } from '../ref/ops';
import { backward, ReefError, slice, tidy, type Runtime, type Tensor } from '../../src/index';
import { l2Normalize } from '../../src/ops/l2-normalize';
import { centeredSoftmax } from '../../src/ops/dino-teacher';
import { sinkhornKnopp } from '../../src/ops/sinkhorn';
import { DinoLoss } from '../../src/losses/dino';
import { DinoHead } from '../../src/nn/dino-head';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('DINO'));

const L2_FWD = 1e-6;
const L2_GRAD = 1e-6;
const HEAD_FWD = 1e-6;
const HEAD_GRAD = 3e-6;
const LOSS_FWD = 1e-6;
const LOSS_GRAD = 2e-6;
const TEACHER = 1e-6;
const SINKHORN = 1e-5;
const SINKHORN_HUGE = 5e-5;

/** Teacher-like probability rows (rounded to f32). */
function probs(rows: number, K: number, rng: Rng, spread = 2): Arr {
  return roundTo(softmax(randnT([rows, K], rng, spread)), 'f32');
}

async function toArr(t: Tensor): Promise<Arr> {
  return arr(t.shape, await download(t));
}

describe('l2Normalize', () => {
  // (C = 1 is left out: its gradient is exactly zero and any rounding is a relative error of 1.)
  const shapes = [[1, 2], [5, 7], [3, 65], [2, 4, 9], [130, 33], [70, 300]];
  for (const variant of ['workgroup', 'rows'] as const) {
    shapes.forEach((shape, i) => {
      it(`[${shape}], ${variant} layout`, async () => {
        process.env.REEF_L2NORMALIZE = variant;
        try {
          const rng = makeRng(10 + i);
          const x = randnT(shape, rng);
          if (shape[0]! > 2) for (let c = 0; c < shape[shape.length - 1]!; c++) x.data[c] = Math.fround(x.data[c]! * 1e-9); // a clamped row (eps 1e-6 below)
          for (const eps of [1e-12, 1e-6]) {
            await checkOp(rt, {
              op: `l2Normalize[${variant}]`,
              inputs: [x],
              names: ['x'],
              rng,
              gpu: ([t]) => l2Normalize(t!, eps),
              ref: ([r]) => L.l2Normalize(r!, eps),
              vjp: ([r], g) => [L.l2NormalizeBackward(r!, eps, g)],
              bound: L2_FWD,
              gradBound: L2_GRAD,
            });
          }
        } finally {
          delete process.env.REEF_L2NORMALIZE;
        }
      });
    });
  }
});

describe('DINO head', () => {
  it('init: names, trunc-normal MLP weights, zero biases, v within ±1/√bottleneck', async () => {
    const head = new DinoHead(rt, { inDim: 24, hiddenDim: 64, bottleneckDim: 16, outDim: 40 });
    try {
      expect(head.namedParameters().map(([n]) => n)).toEqual(['mlp.0.weight', 'mlp.0.bias', 'mlp.2.weight', 'mlp.2.bias', 'mlp.4.weight', 'mlp.4.bias', 'last_layer.weight_v']);
      expect(head.parameters().every((p) => p.requiresGrad)).toBe(true);
      const w = await download(head.weights[1]!);
      const mean = w.reduce((s, v) => s + v, 0) / w.length;
      const std = Math.sqrt(w.reduce((s, v) => s + (v - mean) ** 2, 0) / w.length);
      expect(Math.abs(mean)).toBeLessThan(0.002);
      expect(Math.abs(std - 0.02)).toBeLessThan(0.002);
      for (const b of head.biases) expect((await download(b)).every((v) => v === 0)).toBe(true);
      const v = await download(head.weightV);
      expect(Math.max(...v.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(16));
    } finally {
      head.dispose();
    }
  });

  async function headCase(N: number, opts: { inDim: number; hiddenDim: number; bottleneckDim: number; outDim: number; nlayers?: number }, seed: number): Promise<Record<string, Float32Array>> {
    const rng = makeRng(seed);
    const head = new DinoHead(rt, { ...opts, seed });
    const x = randnT([N, opts.inDim], rng);
    const xt = upload(rt, x, { requiresGrad: true });
    const grads: Record<string, Float32Array> = {};
    try {
      const p: L.HeadParams = { weights: await Promise.all(head.weights.map(toArr)), biases: await Promise.all(head.biases.map(toArr)), v: await toArr(head.weightV) };
      const out = tidy(() => head.forward(xt));
      const expected = L.dinoHead(x, p);
      expect([...out.shape]).toEqual([N, opts.outDim]);
      expectRel('dinoHead', 'forward', await download(out), expected, HEAD_FWD);
      const g = randnT([N, opts.outDim], rng);
      const gt = upload(rt, g);
      backward(out, gt);
      out.dispose();
      gt.dispose();
      const r = L.dinoHeadBackward(x, p, g);
      expectRel('dinoHead', 'dx', await download(xt.grad!), r.dx, HEAD_GRAD);
      grads.x = await xt.grad!.read();
      for (const [i, w] of head.weights.entries()) {
        expectRel('dinoHead', 'dweight', await download(w.grad!), r.dweights[i]!, HEAD_GRAD);
        expectRel('dinoHead', 'dbias', await download(head.biases[i]!.grad!), r.dbiases[i]!, HEAD_GRAD);
        grads[`w${i}`] = await w.grad!.read();
      }
      expectRel('dinoHead', 'dweight_v', await download(head.weightV.grad!), r.dv, HEAD_GRAD);
      grads.v = await head.weightV.grad!.read();
      return grads;
    } finally {
      xt.grad?.dispose();
      xt.dispose();
      head.dispose();
    }
  }

  it('forward and every gradient (3 layers), bitwise the same twice', async () => {
    const opts = { inDim: 12, hiddenDim: 32, bottleneckDim: 16, outDim: 40 };
    const a = await headCase(6, opts, 21);
    const b = await headCase(6, opts, 21);
    for (const k of Object.keys(a)) expect(Buffer.from(b[k]!.buffer).equals(Buffer.from(a[k]!.buffer)), `d${k} bitwise`).toBe(true);
  });

  it('forward and gradients, 1 and 2 layers, rows not a multiple of anything', async () => {
    await headCase(7, { inDim: 9, hiddenDim: 13, bottleneckDim: 5, outDim: 11, nlayers: 1 }, 22);
    await headCase(3, { inDim: 9, hiddenDim: 13, bottleneckDim: 70, outDim: 11, nlayers: 2 }, 23);
  });

  it('releases everything', async () => {
    await expectNoLeak(rt, async () => {
      await headCase(4, { inDim: 8, hiddenDim: 16, bottleneckDim: 8, outDim: 10 }, 24);
    });
  });
});

describe('DINO loss', () => {
  // [B, K, local crops]
  const cases: [number, number, number][] = [[1, 5, 0], [3, 7, 2], [4, 130, 8], [2, 300, 1]];
  cases.forEach(([B, K, locals], i) => {
    it(`B=${B} K=${K} locals=${locals}: one student tensor, and globals + locals pieces`, async () => {
      const rng = makeRng(30 + i);
      const V = 2 + locals;
      const teacher = probs(2 * B, K, rng);
      const teacherT = upload(rt, teacher);
      const loss = new DinoLoss(rt, { outDim: K });
      try {
        for (const pieces of locals > 0 ? [false, true] : [false]) {
          await checkOp(rt, {
            op: pieces ? 'dinoLoss (pieces)' : 'dinoLoss',
            inputs: [randnT([V * B, K], rng, 0.5)],
            names: ['student'],
            rng,
            gpu: ([s]) => {
              if (!pieces) return loss.forward(s!, teacherT);
              // Pieces are separate leaves in training; here slices of one keep the check simple.
              const g = sliceRows(s!, 0, 2 * B);
              const l = sliceRows(s!, 2 * B, V * B);
              return loss.forward([g, l], teacherT);
            },
            ref: ([s]) => L.dinoLoss(s!, teacher, 2, 0.1),
            vjp: ([s], g) => [L.dinoLossBackward(s!, teacher, 2, 0.1, g.data[0]!)],
            bound: LOSS_FWD,
            gradBound: LOSS_GRAD,
          });
        }
      } finally {
        teacherT.dispose();
        loss.dispose();
      }
    });
  });

  it('the student temperature is a parameter; rejects bad shapes', async () => {
    const rng = makeRng(40);
    const teacher = probs(4, 9, rng);
    const teacherT = upload(rt, teacher);
    const loss = new DinoLoss(rt, { outDim: 9, studentTemp: 0.25 });
    try {
      await checkOp(rt, {
        op: 'dinoLoss τ=0.25',
        inputs: [randnT([8, 9], rng)],
        rng,
        gpu: ([s]) => loss.forward(s!, teacherT),
        ref: ([s]) => L.dinoLoss(s!, teacher, 2, 0.25),
        vjp: ([s], g) => [L.dinoLossBackward(s!, teacher, 2, 0.25, g.data[0]!)],
        bound: LOSS_FWD,
        gradBound: LOSS_GRAD,
      });
      const bad = upload(rt, randnT([3, 9], rng));
      try {
        expect(() => loss.forward(bad, teacherT)).toThrow(ReefError);
        expect(() => loss.forward(teacherT, bad)).toThrow(ReefError);
      } finally {
        bad.dispose();
      }
    } finally {
      teacherT.dispose();
      loss.dispose();
    }
  });

  it('the teacher is a constant: no gradient reaches it; nothing leaks', async () => {
    const rng = makeRng(42);
    await expectNoLeak(rt, async () => {
      const s = upload(rt, randnT([8, 11], rng), { requiresGrad: true });
      const t = upload(rt, randnT([4, 11], rng), { requiresGrad: true });
      const loss = new DinoLoss(rt, { outDim: 11 });
      try {
        const q = loss.teacherSoftmax(t, 0.04);
        const sk = loss.teacherSinkhorn(t, 0.04);
        const l = loss.forward(s, q);
        const l2 = loss.forward(s, sk);
        expect(q.requiresGrad).toBe(false);
        backward(l);
        backward(l2);
        loss.updateCenter(t);
        expect(s.grad).not.toBeNull();
        expect(t.grad).toBeNull();
        for (const x of [q, sk, l, l2]) x.dispose();
      } finally {
        s.grad?.dispose();
        s.grad = null;
        for (const x of [s, t]) x.dispose();
        loss.dispose();
      }
    });
  });

  it('initCenter starts the centre at the rows\' mean (float64), whatever it held', async () => {
    const rng = makeRng(43);
    const tHost = randnT([5, 13], rng);
    const t = upload(rt, tHost);
    const loss = new DinoLoss(rt, { outDim: 13 });
    try {
      loss.updateCenter(t); // something non-zero first
      loss.initCenter(t);
      const want = Array.from({ length: 13 }, (_, k) => {
        let m = 0;
        for (let r = 0; r < 5; r++) m += tHost.data[r * 13 + k]!;
        return m / 5;
      });
      const got = await loss.center.read();
      for (let k = 0; k < 13; k++) expect(Math.abs(got[k]! - want[k]!)).toBeLessThan(1e-6 * Math.max(1, Math.abs(want[k]!)));
    } finally {
      t.dispose();
      loss.dispose();
    }
  });

  it('student gradient bitwise the same on a second run', async () => {
    const rng = makeRng(41);
    const B = 4;
    const K = 200;
    const s = upload(rt, randnT([6 * B, K], rng), { requiresGrad: true });
    const q = upload(rt, probs(2 * B, K, rng));
    const loss = new DinoLoss(rt, { outDim: K });
    try {
      await expectDeterministicGrad(s, () => loss.forward(s, q));
    } finally {
      for (const t of [s, q]) t.dispose();
      loss.dispose();
    }
  });
});

describe('DINO teacher', () => {
  it('centred softmax and the centre EMA over two steps (τ_t = 0.04, 0.07)', async () => {
    const rng = makeRng(50);
    const B = 3;
    const K = 150;
    const loss = new DinoLoss(rt, { outDim: K });
    let center = arr([K]);
    try {
      for (const [step, temp] of [[0, 0.04], [1, 0.07]] as const) {
        const t = roundTo(L.l2Normalize(randnT([2 * B, K], rng), 1e-12), 'f32'); // cosines, as the head gives
        for (let k = 0; k < t.data.length; k++) t.data[k] = Math.fround(t.data[k]! * 8 + 0.1 * step);
        const tt = upload(rt, t);
        try {
          const q = loss.teacherSoftmax(tt, temp);
          expectRel('teacherSoftmax', 'forward', await download(q), L.centeredSoftmax(t, center, temp), TEACHER);
          q.dispose();
          loss.updateCenter(tt);
          center = L.centerUpdate(center, t, 0.9);
          expectRel('updateCenter', `step ${step}`, await download(loss.center), center, TEACHER);
        } finally {
          tt.dispose();
        }
      }
    } finally {
      loss.dispose();
    }
  });

  it('rejects a centre of the wrong size', () => {
    const t = upload(rt, randnT([2, 5], makeRng(1)));
    const c = upload(rt, randnT([4], makeRng(2)));
    try {
      expect(() => centeredSoftmax(t, c, 0.04)).toThrow(ReefError);
    } finally {
      t.dispose();
      c.dispose();
    }
  });
});

describe('Sinkhorn–Knopp', () => {
  // [B, K, τ, iterations, logit scale]
  const cases: [number, number, number, number, number][] = [[1, 6, 0.05, 3, 1], [5, 8, 0.05, 3, 1], [8, 130, 0.04, 3, 1], [37, 70, 0.07, 3, 1], [4, 300, 0.05, 1, 1], [6, 20, 0.05, 5, 30]];
  cases.forEach(([B, K, temp, iters, scale], i) => {
    it(`B=${B} K=${K} τ=${temp} ${iters} iterations${scale > 1 ? ', logits ×30 (plain exp would overflow)' : ''}`, async () => {
      const rng = makeRng(60 + i);
      const t = randnT([B, K], rng, 0.4 * scale);
      const tt = upload(rt, t);
      try {
        const q = sinkhornKnopp(tt, temp, iters);
        const got = await download(q);
        q.dispose();
        const expected = L.sinkhorn(t, temp, iters);
        // The exponent t/τ carries an f32 rounding of ~|t/τ|·2⁻²⁴: a wider bound for huge logits.
        const op = scale > 1 ? `sinkhorn (logits ×${scale})` : 'sinkhorn';
        const bound = scale > 1 ? SINKHORN_HUGE : SINKHORN;
        expectRel(op, 'forward', got, expected, bound);
        // Sample rows sum to 1 after the last sample step; prototype columns as the reference says.
        const rowSums = Array.from({ length: B }, (_, b) => got.subarray(b * K, (b + 1) * K).reduce((s, v) => s + v, 0));
        expectRel(op, 'row sums', rowSums, new Array<number>(B).fill(1), 1e-5);
        const colSums = (x: ArrayLike<number>) => Array.from({ length: K }, (_, k) => Array.from({ length: B }, (_, b) => x[b * K + k]!).reduce((s, v) => s + v, 0));
        expectRel(op, 'column sums', colSums(got), colSums(expected.data), bound);
      } finally {
        tt.dispose();
      }
    });
  });
});

describe('Sinkhorn–Knopp over a queue of past teacher logits', () => {
  it('balances the batch with the queued rows (FIFO, partly then fully filled) as float64 Sinkhorn over both', async () => {
    const K = 50;
    const Q = 7;
    const temp = 0.05;
    const loss = new DinoLoss(rt, { outDim: K, queueRows: Q });
    const rng = makeRng(77);
    const history: number[][] = []; // every row pushed so far, float64 copies of the f32 values
    try {
      for (let step = 0; step < 4; step++) {
        const batch = roundTo(randnT([3, K], rng, 0.4), 'f32');
        const t = upload(rt, batch);
        try {
          const q = loss.teacherSinkhorn(t, temp);
          const got = await download(q);
          q.dispose();
          // The queue holds the last min(Q, pushed) rows, oldest first.
          const past = history.slice(-Q);
          expect(loss.queueFilled).toBe(past.length);
          const all = arr([past.length + 3, K], [...past.flat(), ...batch.data]);
          const full = L.sinkhorn(all, temp, 3);
          const expected = full.data.subarray(past.length * K);
          expectRel('sinkhorn with a queue', 'forward', got, expected, SINKHORN);
          loss.pushQueue(t);
          for (let r = 0; r < 3; r++) history.push(Array.from(batch.data.subarray(r * K, (r + 1) * K)));
        } finally {
          t.dispose();
        }
      }
      expect(loss.queueFilled).toBe(Q);
      // The queue tensor itself: the last Q rows pushed.
      expectRel('sinkhorn queue', 'contents', await download(loss.queue!), history.slice(-Q).flat(), 0);
    } finally {
      loss.dispose();
    }
  });
});

function sliceRows(t: Tensor, r0: number, r1: number): Tensor {
  return slice(t, [r0, 0], [r1, t.shape[1]!]);
}
