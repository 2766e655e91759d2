/**
 * iBOT's masked-patch loss on the GPU against the float64 reference: token weights from per-image
 * masks (an image with no masked token still counts in the divisor), the loss and its student
 * gradient, the centred teacher softmax and the centre's EMA over the masked tokens, Sinkhorn over
 * tokens, the empty case, and bitwise-reproducible gradients.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { checkOp, download, expectRel, printErrorTable, randnT, roundTo, expectDeterministicGrad } from '../support/compare';
import { type Arr, arr, makeRng, type Rng } from '../ref/array';
import * as L from '../ref/losses';
import { softmax } from '../ref/ops';
import { type Runtime, tensor } from '../../src/index';
import { IbotPatchLoss, maskedTokens } from '../../src/losses/ibot';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('iBOT'));

const LOSS_FWD = 1e-6;
const LOSS_GRAD = 2e-6;
const TEACHER = 1e-6;
const SINKHORN = 1e-5;

function probs(rows: number, K: number, rng: Rng): Arr {
  return roundTo(softmax(randnT([rows, K], rng, 2)), 'f32');
}

/** Random masks for `images` images of P tokens; image `empty` gets none. */
function randomMasks(images: number, P: number, rng: Rng, empty = -1): Uint8Array[] {
  return Array.from({ length: images }, (_, i) => {
    const m = new Uint8Array(P);
    if (i !== empty) for (let p = 0; p < P; p++) m[p] = rng.uniform() < 0.4 ? 1 : 0;
    if (i !== empty && !m.some((v) => v)) m[0] = 1;
    return m;
  });
}

describe('maskedTokens', () => {
  it('positions, images and weights 1/(#masked·images)', () => {
    const masks = [Uint8Array.from([0, 1, 1, 0]), Uint8Array.from([0, 0, 0, 0]), Uint8Array.from([1, 0, 0, 0]), Uint8Array.from([1, 1, 1, 1])];
    const t = maskedTokens(masks);
    expect([...t.positions]).toEqual([1, 2, 8, 12, 13, 14, 15]);
    expect([...t.image]).toEqual([0, 0, 2, 3, 3, 3, 3]);
    expect(t.images).toBe(4);
    expect([...t.weights]).toEqual([1 / 8, 1 / 8, 1 / 4, 1 / 16, 1 / 16, 1 / 16, 1 / 16].map(Math.fround));
    expect(() => maskedTokens([new Uint8Array(3), new Uint8Array(4)])).toThrow();
  });
});

describe('iBOT loss', () => {
  // [images, tokens per image, K]
  const cases: [number, number, number][] = [[2, 5, 7], [4, 12, 33], [6, 20, 130], [2, 9, 300]];
  cases.forEach(([images, P, K], i) => {
    it(`${images} images × ${P} tokens, K=${K}`, async () => {
      const rng = makeRng(70 + i);
      const tokens = maskedTokens(randomMasks(images, P, rng, i % 2 === 0 ? 1 : -1));
      const N = tokens.positions.length;
      const teacher = probs(N, K, rng);
      const loss = new IbotPatchLoss(rt, { outDim: K });
      const qt = tensor(rt, teacher.data, teacher.shape);
      const wt = loss.weightsTensor(tokens);
      try {
        await checkOp(rt, {
          op: 'ibotLoss',
          inputs: [randnT([N, K], rng, 0.5)],
          names: ['student'],
          rng,
          gpu: ([s]) => loss.forward(s!, qt, wt),
          ref: ([s]) => L.ibotLoss(s!, teacher, tokens.image, images, 0.1),
          vjp: ([s], g) => [L.ibotLossBackward(s!, teacher, tokens.image, images, 0.1, g.data[0]!)],
          bound: LOSS_FWD,
          gradBound: LOSS_GRAD,
        });
      } finally {
        for (const t of [qt, wt]) t.dispose();
        loss.dispose();
      }
    });
  });

  it('no masked token: the loss is 0', async () => {
    const loss = new IbotPatchLoss(rt, { outDim: 5 });
    const s = tensor(rt, [], [0, 5], { requiresGrad: true });
    const w = tensor(rt, [], [0]);
    try {
      const l = loss.forward(s, s, w);
      expect(await l.item()).toBe(0);
      l.dispose();
    } finally {
      for (const t of [s, w]) t.dispose();
      loss.dispose();
    }
  });

  it('student gradient bitwise the same on a second run', async () => {
    const rng = makeRng(80);
    const tokens = maskedTokens(randomMasks(4, 30, rng));
    const N = tokens.positions.length;
    const K = 257;
    const loss = new IbotPatchLoss(rt, { outDim: K });
    const s = tensor(rt, randnT([N, K], rng).data, [N, K], { requiresGrad: true });
    const q = tensor(rt, probs(N, K, rng).data, [N, K]);
    const w = loss.weightsTensor(tokens);
    try {
      await expectDeterministicGrad(s, () => loss.forward(s, q, w));
    } finally {
      for (const t of [s, q, w]) t.dispose();
      loss.dispose();
    }
  });
});

describe('iBOT teacher', () => {
  it('centred softmax and the centre EMA over masked tokens, three steps', async () => {
    const rng = makeRng(90);
    const K = 70;
    const loss = new IbotPatchLoss(rt, { outDim: K, centerMomentum: 0.8 });
    let center = arr([K]);
    try {
      for (const [step, N] of [[0, 13], [1, 70], [2, 1]] as const) {
        const t = randnT([N, K], rng, 0.5);
        const tt = tensor(rt, t.data, t.shape);
        try {
          const q = loss.teacherSoftmax(tt, 0.07);
          expectRel('ibot teacherSoftmax', 'forward', await download(q), L.centeredSoftmax(t, center, 0.07), TEACHER);
          q.dispose();
          loss.updateCenter(tt);
          center = L.centerUpdate(center, t, 0.8);
          expectRel('ibot updateCenter', `step ${step}`, await download(loss.center), center, TEACHER);
        } finally {
          tt.dispose();
        }
      }
    } finally {
      loss.dispose();
    }
  });

  it('Sinkhorn over the masked tokens (B = N tokens)', async () => {
    const rng = makeRng(91);
    const t = randnT([150, 40], rng, 0.4);
    const tt = tensor(rt, t.data, t.shape);
    const loss = new IbotPatchLoss(rt, { outDim: 40 });
    try {
      const q = loss.teacherSinkhorn(tt, 0.05);
      expectRel('ibot sinkhorn', 'forward', await download(q), L.sinkhorn(t, 0.05, 3), SINKHORN);
      q.dispose();
    } finally {
      tt.dispose();
      loss.dispose();
    }
  });
});
