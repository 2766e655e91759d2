/**
 * matmul on the GPU — every kernel variant, forward and backward — against the float64 reference
 * (test/ref/ops.ts `matmul`, test/ref/grads.ts `matmulBackward`).
 *
 * Error model: each output is a length-K dot product accumulated in f32 (fma). With random normal
 * inputs the rounding error of one output grows like ~√K·2⁻²⁴ relative to the typical output
 * magnitude, so the bound is MM_C·√(inner length) relative to max|expected|, with MM_C set a few
 * times above the worst measured value (see the table printed at the end of the file).
 * Gradients: dA has inner length N, dB and dbias have inner length (batch·M).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { checkOp, expectNoLeak, expectRel, download, printErrorTable, randnT, upload } from '../support/compare';
import { type Arr, makeRng } from '../ref/array';
import { matmul as refMatmul } from '../ref/ops';
import { matmulBackward } from '../ref/grads';
import { backward, matmul, MATMUL_VARIANTS, ReefError, type DType, type MatmulVariant, type Runtime } from '../../src/index';
import { planMatmul } from '../../src/ops/matmul';
import { rowsSubgroupSize } from '../../src/ops/conv3d';

// Top-level await: the adapter's capabilities decide which tests are skipped at collection time.
const rt: Runtime = await testRuntime();
if (!rt.caps.f16) console.log('matmul f16 tests skipped: this adapter has no shader-f16 feature');
afterAll(() => printErrorTable('matmul'));

/** f32: relative error per √(inner length). */
const MM_C = 2.5e-7;
/** f16 storage: inputs are exact f16 values, accumulation is f32, the output is rounded to f16 (2⁻¹¹ relative). */
const MM_F16 = 2e-3;

interface MMCase {
  name: string;
  M: number;
  K: number;
  N: number;
  aBatch?: number[];
  bBatch?: number[];
  transA?: boolean;
  transB?: boolean;
  bias?: boolean;
}

function shapes(c: MMCase): { a: number[]; b: number[] } {
  const a = [...(c.aBatch ?? []), c.transA ? c.K : c.M, c.transA ? c.M : c.K];
  const b = [...(c.bBatch ?? []), c.transB ? c.N : c.K, c.transB ? c.K : c.N];
  return { a, b };
}

function label(c: MMCase): string {
  const { a, b } = shapes(c);
  return `${c.name}: [${a}]${c.transA ? 'ᵀ' : ''}·[${b}]${c.transB ? 'ᵀ' : ''}${c.bias ? '+bias' : ''}`;
}

const CASES: MMCase[] = [
  { name: 'all dims 1', M: 1, K: 1, N: 1 },
  { name: 'K=1', M: 3, K: 1, N: 5 },
  { name: 'odd 17x33x7', M: 17, K: 33, N: 7 },
  { name: 'odd 5x3x65', M: 5, K: 3, N: 65 },
  { name: 'odd 127x5x1', M: 127, K: 5, N: 1 },
  { name: 'odd 65x127x33', M: 65, K: 127, N: 33, bias: true },
  { name: 'bias', M: 7, K: 5, N: 3, bias: true },
  { name: 'transA', M: 33, K: 17, N: 65, transA: true },
  { name: 'transB', M: 33, K: 17, N: 65, transB: true, bias: true },
  { name: 'transA+transB', M: 33, K: 17, N: 65, transA: true, transB: true, bias: true },
  { name: 'batched a, 2-D b', M: 17, K: 5, N: 33, aBatch: [3], bias: true },
  { name: 'batched a, 2-D b, transB', M: 7, K: 17, N: 5, aBatch: [2, 3], transB: true },
  { name: 'batched a, 2-D b, transA', M: 7, K: 5, N: 17, aBatch: [3], transA: true, bias: true },
  { name: 'batched both', M: 7, K: 5, N: 9, aBatch: [2, 3], bBatch: [2, 3] },
  { name: 'batched both, transA', M: 5, K: 7, N: 3, aBatch: [3], bBatch: [3], transA: true, bias: true },
  { name: 'batched both, transA+transB', M: 17, K: 3, N: 7, aBatch: [2], bBatch: [2], transA: true, transB: true },
  { name: '2-D a, batched b', M: 7, K: 5, N: 9, bBatch: [3] },
  { name: '2-D a, batched b, transA+transB', M: 9, K: 7, N: 5, bBatch: [2, 2], transA: true, transB: true, bias: true },
  { name: 'wide 3x9x300', M: 3, K: 9, N: 300, bias: true },
  { name: 'large 300x257x190', M: 300, K: 257, N: 190, bias: true },
  { name: 'large 520x9x515 (tiled: 128×128 tiles)', M: 520, K: 9, N: 515, transB: true },
  // N % 4 == 0 with B not transposed: regblock takes its vec4 kernel.
  { name: 'vec4 N=4', M: 1, K: 1, N: 4 },
  { name: 'vec4 odd M,K 17x33x12', M: 17, K: 33, N: 12, bias: true },
  { name: 'vec4 transA 33x17x64', M: 33, K: 17, N: 64, transA: true, bias: true },
  { name: 'vec4 batched both 7x5x8', M: 7, K: 5, N: 8, aBatch: [2, 3], bBatch: [2, 3] },
  { name: 'vec4 2-D a, batched b 9x7x12', M: 9, K: 7, N: 12, bBatch: [3], bias: true },
  { name: 'vec4 large 131x70x260', M: 131, K: 70, N: 260, bias: true },
];

async function runCase(variant: MatmulVariant | undefined, c: MMCase, seed: number, dtype: DType = 'f32', consts?: Record<string, number>): Promise<void> {
  const rng = makeRng(seed);
  const { a, b } = shapes(c);
  const inputs: Arr[] = [randnT(a, rng, 1, dtype), randnT(b, rng, 1, dtype)];
  if (c.bias) inputs.push(randnT([c.N], rng, 1, dtype));
  const opts = { transA: c.transA ?? false, transB: c.transB ?? false };
  const batch = [...(c.aBatch ?? []), ...(c.bBatch ?? [])].length ? Math.max(...[c.aBatch ?? [1], c.bBatch ?? [1]].map((s) => s.reduce((p, d) => p * d, 1))) : 1;
  const tol = (inner: number) => (dtype === 'f16' ? MM_F16 : MM_C * Math.sqrt(inner));
  await checkOp(rt, {
    op: `matmul[${variant ?? 'default'}]${dtype === 'f16' ? ' f16' : ''}`,
    inputs,
    names: ['a', 'b', 'bias'],
    dtype,
    rng,
    gpu: ([ta, tb, tbias]) => matmul(ta!, tb!, { ...opts, bias: tbias ?? null, variant, ...(consts ? { consts } : {}) }),
    ref: ([ra, rb, rbias]) => refMatmul(ra!, rb!, { ...opts, bias: rbias ?? null }),
    vjp: ([ra, rb, rbias], g) => {
      const r = matmulBackward(ra!, rb!, g, { ...opts, bias: rbias ?? null });
      return [r.da, r.db, r.dbias];
    },
    bound: tol(c.K),
    gradBound: [tol(c.N), tol(c.M * batch), tol(c.M * batch)],
  });
}

describe.each(MATMUL_VARIANTS.map((v) => [v]))('matmul variant=%s', (variant) => {
  CASES.forEach((c, i) => {
    it(label(c), async () => {
      await runCase(variant as MatmulVariant, c, 1000 + i);
    });
  });
});

// Few columns and many rows: on CPU adapters with fixed-size subgroups regblock takes its rows_sg
// kernel (lanes along rows, 12 columns per group), forward and dA; dB (M = K) stays on the others.
describe('matmul regblock, few columns (rows_sg where the adapter has subgroups)', () => {
  const ROWS: MMCase[] = [
    { name: 'Linear 12→12, odd rows', M: 1031, K: 12, N: 12, transB: true, bias: true },
    { name: 'Linear 48→12', M: 1029, K: 48, N: 12, transB: true, bias: true },
    { name: 'Linear 12→36 (qkv)', M: 1100, K: 12, N: 36, transB: true, bias: true },
    { name: 'N=13, two groups, B untransposed', M: 1025, K: 7, N: 13 },
    { name: 'N=1', M: 1300, K: 5, N: 1, bias: true },
    { name: 'N=47, transA', M: 1027, K: 9, N: 47, transA: true },
    { name: 'transA+transB', M: 1033, K: 3, N: 20, transA: true, transB: true, bias: true },
    { name: 'batch folded into rows', M: 343, K: 24, N: 24, aBatch: [3], transB: true, bias: true },
    { name: 'batched both', M: 1030, K: 6, N: 10, aBatch: [2], bBatch: [2] },
  ];
  it('the plan takes rows_sg for these shapes exactly where subgroups are usable', () => {
    const sg = rowsSubgroupSize(rt) > 0;
    expect(planMatmul(rt, 1031, 12, { transB: true }, 'regblock').shader).toBe(sg ? 'rows_sg' : 'regblock');
    expect(planMatmul(rt, 1031, 49, { transB: true }, 'regblock').shader).toBe('regblock');
    expect(planMatmul(rt, 1000, 12, { transB: true }, 'regblock').shader).toBe('regblock');
    expect(planMatmul(rt, 4096, 12, { transB: true }, 'tiled').shader).toBe('tiled');
  });
  ROWS.forEach((c, i) => {
    it(label(c), async () => {
      await runCase('regblock', c, 6000 + i);
    });
  });
  it.skipIf(!rt.caps.f16)('f16: Linear 48→12 (bound MM_F16)', async () => {
    await runCase('regblock', ROWS[1]!, 6100, 'f16');
  });
});

describe('matmul f16', () => {
  const F16_CASES: MMCase[] = [
    { name: 'all dims 1', M: 1, K: 1, N: 1 },
    { name: 'odd 17x33x7 transB+bias', M: 17, K: 33, N: 7, transB: true, bias: true },
    { name: 'odd 65x127x33 transA', M: 65, K: 127, N: 33, transA: true },
    { name: 'batched a, 2-D b', M: 17, K: 5, N: 33, aBatch: [3], bias: true },
    { name: 'batched both, transA+transB', M: 17, K: 3, N: 7, aBatch: [2], bBatch: [2], transA: true, transB: true },
    { name: '2-D a, batched b', M: 7, K: 5, N: 9, bBatch: [3] },
    { name: 'large 130x257x67', M: 130, K: 257, N: 67, bias: true },
  ];
  for (const variant of MATMUL_VARIANTS) {
    F16_CASES.forEach((c, i) => {
      it.skipIf(!rt.caps.f16)(`${variant}: ${label(c)} (bound ${MM_F16})`, async () => {
        await runCase(variant, c, 2000 + i, 'f16');
      });
    });
  }
});

describe('matmul tile configurations (the `consts` option; the backward uses the default plan)', () => {
  const CONFIGS: [MatmulVariant, Record<string, number>][] = [
    ['regblock', { TM: 4, TN: 4, WG: 64 }],
    ['regblock', { TM: 2, TN: 8, WG: 32 }],
    ['regblock', { TM: 1, TN: 1, WG: 16 }],
    ['regblock', { TM: 3, TN: 3, WG: 8 }],
    ['tiled', { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 }],
    ['tiled', { BM: 32, BN: 64, BK: 8, TM: 2, TN: 4 }],
    ['tiled', { BM: 16, BN: 16, BK: 4, TM: 1, TN: 1 }],
  ];
  CONFIGS.forEach(([variant, consts], i) => {
    for (const [tA, tB] of [[false, false], [true, true]] as const) {
      // N = 127 takes the scalar regblock kernel, N = 128 without transB its vec4 kernel.
      for (const N of [127, 128]) {
        const c: MMCase = { name: `${variant} ${JSON.stringify(consts)}`, M: 65, K: 33, N, transA: tA, transB: tB, bias: true };
        it(label(c), async () => {
          await runCase(variant, c, 5000 + 2 * i + (tA ? 1 : 0) + N, 'f32', consts);
        });
      }
    }
  });
});

describe('matmul misc', () => {
  it('the default variant (no `variant` option) matches the reference', async () => {
    await runCase(undefined, { name: 'default', M: 33, K: 65, N: 17, aBatch: [2], bias: true }, 3000);
  });

  it('gradients accumulate over two backward passes, and a grad-free input gets none', async () => {
    const rng = makeRng(3001);
    const ra = randnT([5, 7], rng);
    const rb = randnT([7, 3], rng);
    const a = upload(rt, ra, { requiresGrad: true });
    const b = upload(rt, rb); // no grad
    const g = randnT([5, 3], rng);
    const gt = upload(rt, g);
    for (let pass = 0; pass < 2; pass++) {
      const out = matmul(a, b, { variant: 'regblock' });
      backward(out, gt);
      out.dispose();
    }
    const ref = matmulBackward(ra, rb, g).da;
    for (let i = 0; i < ref.data.length; i++) ref.data[i] = 2 * ref.data[i]!;
    expectRel('matmul[regblock]', 'dA (2 passes)', await download(a.grad!), ref, MM_C * Math.sqrt(3));
    expect(b.grad).toBeNull();
    for (const t of [a.grad!, a, b, gt]) t.dispose();
  });

  it('rejects mismatched inner dimensions, naming both shapes', () => {
    const a = upload(rt, randnT([3, 4], makeRng(1)));
    const b = upload(rt, randnT([5, 6], makeRng(2)));
    try {
      expect(() => matmul(a, b)).toThrow(ReefError);
      expect(() => matmul(a, b)).toThrow(/3×4.*5×6/);
      expect(() => matmul(a, b)).toThrow(/inner dimensions 4 and 5/);
      expect(() => matmul(a, b, { transB: true })).toThrow(/3×4.*5×6/);
      expect(() => matmul(a, a)).toThrow(/3×4.*3×4/);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('rejects a bias of the wrong length and batch dims that do not match', () => {
    const a = upload(rt, randnT([2, 3, 4], makeRng(1)));
    const b = upload(rt, randnT([3, 4, 5], makeRng(2)));
    const w = upload(rt, randnT([4, 5], makeRng(3)));
    const bias = upload(rt, randnT([4], makeRng(4)));
    try {
      expect(() => matmul(a, b)).toThrow(/batch/);
      expect(() => matmul(a, w, { bias })).toThrow(/bias/);
    } finally {
      for (const t of [a, b, w, bias]) t.dispose();
    }
  });

  it('frees everything (outputs, gradients, tape) once disposed', async () => {
    await expectNoLeak(rt, async () => {
      for (const variant of MATMUL_VARIANTS) {
        await runCase(variant, { name: 'leak', M: 17, K: 5, N: 33, aBatch: [3], transB: true, bias: true }, 4000);
        await runCase(variant, { name: 'leak', M: 7, K: 5, N: 9, bBatch: [3], transA: true }, 4001);
      }
    });
  });
});
