/**
 * The materialised baseline of kernels-bench/ against the fused windowAttention3d: same forward,
 * and the same gradients of q, k, v and the qkv bias through a random upstream gradient (the
 * baseline gathers the relative-position bias off the tape, so the table's gradient is not compared).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { download, expectNoLeak, expectRel, printErrorTable, randnT, upload } from '../support/compare';
import { makeRng } from '../ref/array';
import { backward, type Runtime, type Tensor } from '../../src/index';
import { windowAttention3d } from '../../src/ops/window-attention3d';
import { windowAndShift, type Vec3 } from '../../src/models/swin3d/window-geometry';
import { gatherRelativeBias, materialisedConstants, materialisedWindowAttention3d } from '../../kernels-bench/materialised-attention';
import { stageRelativeIndex } from '../../src/models/swin3d/window-geometry';

const rt: Runtime = await testRuntime();
afterAll(() => printErrorTable('materialised window attention'));

const BOUND = 1e-5;

interface Case {
  shape: [number, number, number, number, number];
  heads: number;
  win: Vec3;
  shift: Vec3;
  cfg: Vec3;
  windowsPerChunk?: number;
}

const cfg4: Vec3 = [4, 4, 4];
const ws7 = (size: Vec3, shifted: boolean) => {
  const w = windowAndShift(size, [7, 7, 7], [3, 3, 3]);
  return { win: w.window, shift: shifted ? w.shift : ([0, 0, 0] as Vec3), cfg: [7, 7, 7] as Vec3 };
};

const CASES: Case[] = [
  { shape: [1, 9, 10, 8, 8], heads: 2, win: [4, 4, 4], shift: [0, 0, 0], cfg: cfg4 },                     // padding on D and H
  { shape: [1, 9, 10, 8, 8], heads: 2, win: [4, 4, 4], shift: [2, 2, 2], cfg: cfg4 },                     // + roll and mask
  { shape: [2, 9, 10, 8, 8], heads: 2, win: [4, 4, 4], shift: [2, 2, 2], cfg: cfg4, windowsPerChunk: 4 }, // two batches, 18 windows in chunks of 4
  { shape: [1, 9, 3, 8, 8], heads: 2, ...ws7([9, 3, 8], true) },  // H below the window: [7,3,7] shift [3,0,3], sliced index
  { shape: [1, 3, 2, 3, 8], heads: 2, ...ws7([3, 2, 3], false) }, // window = size [3,2,3]: 18 tokens, irregular [:n,:n] slice
];

function makeInputs(c: Case, seed: number): Tensor[] {
  const rng = makeRng(seed);
  const C = c.shape[4];
  const rows = (2 * c.cfg[0] - 1) * (2 * c.cfg[1] - 1) * (2 * c.cfg[2] - 1);
  return [
    upload(rt, randnT(c.shape, rng), { requiresGrad: true }),
    upload(rt, randnT(c.shape, rng), { requiresGrad: true }),
    upload(rt, randnT(c.shape, rng), { requiresGrad: true }),
    upload(rt, randnT([3 * C], rng), { requiresGrad: true }),
    upload(rt, randnT([rows, c.heads], rng, 0.5)),
  ];
}

/** Output and the gradients of q, k, v, qkvBias for one implementation; frees everything it made. */
async function run(c: Case, impl: 'fused' | 'materialised', seed: number): Promise<Float64Array[]> {
  const xs = makeInputs(c, seed);
  const [q, k, v, qkvBias, table] = xs as [Tensor, Tensor, Tensor, Tensor, Tensor];
  const args = { q, k, v, qkvBias, table, heads: c.heads, window: c.win, shift: c.shift, configuredWindow: c.cfg };
  try {
    const out = impl === 'fused' ? windowAttention3d(args) : materialisedWindowAttention3d({ ...args, windowsPerChunk: c.windowsPerChunk });
    const g = upload(rt, randnT(c.shape, makeRng(seed + 1000)));
    const res = [await download(out)];
    backward(out, g);
    out.dispose();
    g.dispose();
    // Without padding the qkv bias is not used: the baseline leaves its gradient null (zero).
    for (const t of [q, k, v, qkvBias]) res.push(t.grad ? await download(t.grad) : new Float64Array(t.size));
    return res;
  } finally {
    for (const t of xs) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}

describe('materialisedWindowAttention3d', () => {
  CASES.forEach((c, ci) => {
    const name = `[${c.shape}] window [${c.win}] of [${c.cfg}] shift [${c.shift}]${c.windowsPerChunk ? ` in chunks of ${c.windowsPerChunk} windows` : ''}`;
    it(`${name}: forward and gradients match the fused op`, async () => {
      await expectNoLeak(rt, async () => {
        const fused = await run(c, 'fused', 20 + ci);
        const mat = await run(c, 'materialised', 20 + ci);
        ['forward', 'dq', 'dk', 'dv', 'dqkvBias'].forEach((what, i) => expectRel('materialised vs fused', what, mat[i]!, fused[i]!, BOUND));
      });
    });
  });

  it('gathers the relative-position bias with MONAI\'s [:n, :n] index slice', async () => {
    for (const [win, cfg] of [[[3, 2, 3], [7, 7, 7]], [[4, 4, 4], [4, 4, 4]], [[2, 3, 2], [3, 4, 2]]] as [Vec3, Vec3][]) {
      const heads = 3;
      const rows = (2 * cfg[0] - 1) * (2 * cfg[1] - 1) * (2 * cfg[2] - 1);
      const data = Float32Array.from({ length: rows * heads }, (_, i) => i);
      const table = upload(rt, { shape: [rows, heads], data: Float64Array.from(data) });
      const bias = gatherRelativeBias(table, heads, win, cfg);
      const got = await bias.read();
      table.dispose();
      bias.dispose();
      const index = stageRelativeIndex(cfg, win);
      const n = win[0] * win[1] * win[2];
      const want = new Float32Array(heads * n * n);
      for (let h = 0; h < heads; h++) for (let e = 0; e < n * n; e++) want[h * n * n + e] = index[e]! * heads + h;
      expect(Array.from(got)).toEqual(Array.from(want));
    }
  });

  it('reusable constants: chunking follows the storage binding limit, a mismatched geometry is refused', async () => {
    const c = CASES[1]!;
    const xs = makeInputs(c, 99);
    const [q, k, v, qkvBias, table] = xs as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const args = { q, k, v, qkvBias, table, heads: c.heads, window: c.win, shift: c.shift, configuredWindow: c.cfg };
    const consts = materialisedConstants(args);
    try {
      expect(consts.chunks).toBe(1);
      expect(consts.masks?.length).toBe(1);
      const a = materialisedWindowAttention3d({ ...args, constants: consts });
      const b = materialisedWindowAttention3d(args);
      expect(Array.from(await a.read())).toEqual(Array.from(await b.read()));
      a.dispose();
      b.dispose();
      expect(() => materialisedWindowAttention3d({ ...args, shift: [0, 0, 0], constants: consts })).toThrow(/constants are for/);
    } finally {
      consts.dispose();
      for (const t of xs) t.dispose();
    }
  });
});
