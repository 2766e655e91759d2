/**
 * Tensors larger than the adapter's maxStorageBufferBindingSize are bound in pieces (coralbay-h's
 * 3072→3072 conv weights are 1 GB, over lavapipe's 128 MiB and browsers' default 128 MiB). A runtime
 * limited to 16 KiB per binding takes those paths at small sizes: matmul splits rows of A and C and
 * rows of a transposed B; conv3d splits output and reduction channels per batch element, at piece
 * offsets that are not aligned (the kernels get the remainder). Checked against the float64
 * references, with gradients where the backward can be split too (conv3d dx and dW; matmul dA with a small B;
 * GELU, add, InstanceNorm/LayerNorm dx, mean, permute, slice). Not split yet, and so refused with a
 * clear error: broadcasting binaries and LayerNorm parameter gradients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../../src/gpu/runtime';
import { conv3d } from '../../src/ops/conv3d';
import { add, backward, gelu, instanceNorm, layerNorm, matmul, MATMUL_VARIANTS, mean, permute, ReefError, slice, sum } from '../../src/index';
import { arr, makeRng } from '../ref/array';
import { conv3d as refConv3d, conv3dBackward } from '../ref/conv3d';
import { addBackward, geluBackward, layerNormBackward, matmulBackward, meanBackward, permuteBackward, sliceBackward, sumBackward } from '../ref/grads';
import { add as refAdd, gelu as refGelu, layerNorm as refLayerNorm, matmul as refMatmul, mean as refMean, permute as refPermute, slice as refSlice, sum as refSum } from '../ref/ops';
import { checkOp, expectNoLeak, expectRel, printErrorTable, randnT, upload } from '../support/compare';
import { swinViTConfig, swinViTParamShapes } from '../../src/models/swin3d/config';
import { swinBlock } from '../../src/models/swin3d/swin-vit';
import { swinBlock as refSwinBlock } from '../ref/swin';
import { disposeAll, hostWeights, lookup, uploadWeights } from '../support/model-weights';

const SWIN_SHAPES = swinViTParamShapes(swinViTConfig({ featureSize: 12 }));

const LIMIT = 16 * 1024;
let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create({ maxStorageBufferBindingSize: LIMIT, maxBatch: 64 });
});
afterAll(() => {
  printErrorTable('bound in pieces');
  rt.dispose();
});

describe(`ops bind tensors over the binding limit (${LIMIT} bytes) in pieces`, () => {
  for (const variant of MATMUL_VARIANTS) {
    it(`matmul[${variant}] 301×40 · (200×40)ᵀ + bias: A, C and B all in pieces (forward)`, async () => {
      const rng = makeRng(301);
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: `matmul[${variant}] pieces, Bᵀ split`,
          inputs: [randnT([301, 40], rng), randnT([200, 40], rng), randnT([200], rng)],
          gpu: ([a, b, bias]) => matmul(a!, b!, { transB: true, bias: bias!, variant }),
          ref: ([a, b, bias]) => refMatmul(a!, b!, { transB: true, bias: bias! }),
          bound: 2e-6,
          rng,
        }),
      );
    });

    it(`matmul[${variant}] 2×157×36 · 36×24: batch folded into rows, A and C in pieces, forward and dA`, async () => {
      const rng = makeRng(302);
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: `matmul[${variant}] pieces, rows`,
          inputs: [randnT([2, 157, 36], rng), randnT([36, 24], rng)],
          names: ['a', 'b'],
          grad: [true, false],
          gpu: ([a, b]) => matmul(a!, b!, { variant }),
          ref: ([a, b]) => refMatmul(a!, b!),
          vjp: ([a, b], g) => [matmulBackward(a!, b!, g).da, undefined],
          bound: 2e-6,
          rng,
        }),
      );
    });
  }

  for (const variant of MATMUL_VARIANTS) {
    it(`matmul[${variant}] (1001×12)ᵀ · 1001×20 (a weight gradient over many tokens): split over the shared rows, summed in order`, async () => {
      const rng = makeRng(304);
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: `matmul[${variant}] pieces, split K`,
          inputs: [randnT([1001, 12], rng), randnT([1001, 20], rng)],
          gpu: ([a, b]) => matmul(a!, b!, { transA: true, variant }),
          ref: ([a, b]) => refMatmul(a!, b!, { transA: true }),
          bound: 4e-6,
          rng,
        }),
      );
    });
  }

  it('matmul with an untransposed B over the limit: a clear error', () => {
    const rng = makeRng(303);
    const a = upload(rt, randnT([8, 64], rng));
    const b = upload(rt, randnT([64, 80], rng)); // 20 KiB, stored [K, N]
    try {
      expect(() => matmul(a, b)).toThrow(ReefError);
      expect(() => matmul(a, b)).toThrow(/maxStorageBufferBindingSize.*transposed/);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  const convCases = [
    // x 2·20·504 floats, weight 12·20·27: 3 reduction blocks × 2 output blocks per batch element,
    // piece offsets of 504·4 bytes (not 256-aligned).
    { x: [2, 20, 9, 8, 7], co: 12, k: 3 },
    // More output than input channels; 1×1×1 kernel; odd volume.
    { x: [1, 6, 11, 13, 9], co: 40, k: 1 },
    // Few positions (narrow kernels): weight rows in 5 blocks forward, dx over 4 reduction blocks.
    { x: [1, 300, 2, 2, 2], co: 40, k: 1 },
    // One position, 3³ kernel: weight blocks of 3 rows.
    { x: [1, 40, 1, 1, 1], co: 30, k: 3 },
  ] as const;
  for (const c of convCases) {
    it(`conv3d ${c.x.join('×')} → ${c.co} (k=${c.k}): forward, dx and dW in pieces, matching float64`, async () => {
      const rng = makeRng(310 + c.co + c.x[1]);
      const K = c.k ** 3;
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: `conv3d pieces k=${c.k}`,
          inputs: [randnT(c.x, rng), randnT([c.co, c.x[1], c.k, c.k, c.k], rng)],
          names: ['x', 'weight'],
          gpu: ([x, w]) => conv3d(x!, w!),
          ref: ([x, w]) => refConv3d(x!, w!),
          vjp: ([x, w], g) => {
            const r = conv3dBackward(x!, w!, g);
            return [r.dx, r.dw];
          },
          bound: 1.5e-7 * Math.sqrt(c.x[1] * K) * 3,
          gradBound: [1.5e-7 * Math.sqrt(c.co * K) * 3, 1.5e-7 * Math.sqrt(c.x[0] * c.x[2] * c.x[3] * c.x[4]) * 3],
          rng,
        }),
      );
    });
  }

  it('GELU over 5000 values (20 KB): aligned runs of elements, forward and backward', async () => {
    const rng = makeRng(330);
    await expectNoLeak(rt, () =>
      checkOp(rt, {
        op: 'gelu pieces',
        inputs: [randnT([5, 1000], rng)],
        gpu: ([x]) => gelu(x!),
        ref: ([x]) => refGelu(x!),
        vjp: ([x], g) => [geluBackward(x!, g)],
        bound: 1e-6,
        rng,
      }),
    );
  });

  it('a residual add of two 3×2001 maps: aligned runs of elements, forward and backward', async () => {
    const rng = makeRng(331);
    await expectNoLeak(rt, () =>
      checkOp(rt, {
        op: 'add pieces',
        inputs: [randnT([3, 2001], rng), randnT([3, 2001], rng)],
        gpu: ([a, b]) => add(a!, b!),
        ref: ([a, b]) => refAdd(a!, b!),
        vjp: ([a, b], g) => {
          const r = addBackward(a!.shape, b!.shape, g);
          return [r.da, r.db];
        },
        bound: 1e-7,
        rng,
      }),
    );
  });

  it('InstanceNorm of a [2, 5, 8, 8, 8] map and LayerNorm of 700×13 rows: blocks of rows, stats bound whole', async () => {
    const rng = makeRng(332);
    await expectNoLeak(rt, () =>
      checkOp(rt, {
        op: 'instanceNorm pieces',
        inputs: [randnT([2, 5, 8, 8, 8], rng)],
        gpu: ([x]) => instanceNorm(x!),
        ref: ([x]) => arr(x!.shape, refLayerNorm(arr([10, 512], x!.data), null, null).data),
        vjp: ([x], g) => [arr(x!.shape, layerNormBackward(arr([10, 512], x!.data), null, null, arr([10, 512], g.data)).dx.data)],
        bound: 2e-6,
        rng,
      }),
    );
    await expectNoLeak(rt, () =>
      checkOp(rt, {
        op: 'layerNorm pieces',
        inputs: [randnT([700, 13], rng), randnT([13], rng), randnT([13], rng)],
        grad: [true, false, false],
        gpu: ([x, w, b]) => layerNorm(x!, w!, b!),
        ref: ([x, w, b]) => refLayerNorm(x!, w!, b!),
        vjp: ([x, w, b], g) => [layerNormBackward(x!, w!, b!, g).dx, undefined, undefined],
        bound: 2e-6,
        rng,
      }),
    );
  });

  it('the spatial mean of a [2, 3, 12, 12, 12] map: blocks of rows into temporaries; its backward expands in pieces', async () => {
    const rng = makeRng(333);
    await expectNoLeak(rt, () =>
      checkOp(rt, {
        op: 'mean pieces',
        inputs: [randnT([2, 3, 12, 12, 12], rng)],
        gpu: ([x]) => mean(x!, [2, 3, 4]),
        ref: ([x]) => refMean(x!, [2, 3, 4]),
        vjp: ([x], g) => [meanBackward(g, x!.shape, [2, 3, 4])],
        bound: 1e-6,
        rng,
      }),
    );
  });

  it('the mean of a whole [2, 3, 12, 12, 12] map and a sum over [1..4]: rows cut into sub-rows whose sums are added', async () => {
    const rng = makeRng(335);
    for (const axes of [[0, 1, 2, 3, 4], [1, 2, 3, 4]]) {
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: 'mean/sum pieces, sub-rows',
          inputs: [randnT([2, 3, 12, 12, 12], rng)],
          gpu: ([x]) => (axes.length === 5 ? mean(x!, axes) : sum(x!, axes)),
          ref: ([x]) => (axes.length === 5 ? refMean(x!, axes) : refSum(x!, axes)),
          vjp: ([x], g) => [axes.length === 5 ? meanBackward(g, x!.shape, axes) : sumBackward(g, x!.shape, axes)],
          bound: 1e-6,
          rng,
        }),
      );
    }
  });

  it('a sum over the leading axes of [3, 130, 24] and a mean over [0] of [700, 12] (a bias gradient): blocks of rows summed in order', async () => {
    const rng = makeRng(336);
    for (const [shape, axes, isMean] of [[[3, 130, 24], [0, 1], false], [[700, 12], [0], true]] as const) {
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: 'sum/mean pieces, leading axes',
          inputs: [randnT([...shape], rng)],
          gpu: ([x]) => (isMean ? mean(x!, [...axes]) : sum(x!, [...axes])),
          ref: ([x]) => (isMean ? refMean(x!, [...axes]) : refSum(x!, [...axes])),
          vjp: ([x], g) => [isMean ? meanBackward(g, x!.shape, [...axes]) : sumBackward(g, x!.shape, [...axes])],
          bound: 1e-6,
          rng,
        }),
      );
    }
  });

  it('permute of a [2, 5, 9, 10, 11] map to channels-last, and a slice of it: strided copies halved until they fit', async () => {
    const rng = makeRng(334);
    await expectNoLeak(rt, () =>
      checkOp(rt, {
        op: 'permute pieces',
        inputs: [randnT([2, 5, 9, 10, 11], rng)],
        gpu: ([x]) => permute(x!, [0, 2, 3, 4, 1]),
        ref: ([x]) => refPermute(x!, [0, 2, 3, 4, 1]),
        vjp: ([x], g) => [permuteBackward(g, [0, 2, 3, 4, 1])],
        bound: 0,
        rng,
      }),
    );
    await expectNoLeak(rt, () =>
      checkOp(rt, {
        op: 'slice pieces',
        inputs: [randnT([7, 3001], rng)],
        gpu: ([x]) => slice(x!, [1, 5], [6, 2990]),
        ref: ([x]) => refSlice(x!, [1, 5], [6, 2990]),
        vjp: ([x], g) => [sliceBackward(g, x!.shape, [1, 5], [6, 2990])],
        bound: 0,
        rng,
      }),
    );
  });

  it('conv3d in pieces is bitwise deterministic', async () => {
    const rng = makeRng(320);
    const x = upload(rt, randnT([2, 20, 9, 8, 7], rng), { requiresGrad: true });
    const w = upload(rt, randnT([12, 20, 3, 3, 3], rng), { requiresGrad: true });
    const g = upload(rt, randnT([2, 12, 9, 8, 7], rng));
    const runs: Float32Array[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const y = conv3d(x, w);
        backward(y, g);
        runs.push(new Float32Array([...(await y.read()), ...(await x.grad!.read()), ...(await w.grad!.read())]));
        y.dispose();
        for (const t of [x, w]) {
          t.grad!.dispose();
          t.grad = null;
        }
      }
      expect(Buffer.from(runs[0]!.buffer).equals(Buffer.from(runs[1]!.buffer))).toBe(true);
    } finally {
      for (const t of [x, w, g]) t.dispose();
    }
  });

  it('a Swin block whose q/k/v projection is over the limit runs its window attention by groups of samples (forward vs float64)', async () => {
    // A 32 KiB limit (the stage-1 bias table, 13³ × 3 heads, takes 26 KiB): q/k/v of [3, 5, 5, 5, 12]
    // is 3 × 18000 bytes, one sample's fits.
    const small = await Runtime.create({ maxStorageBufferBindingSize: 32 * 1024, maxBatch: 64 });
    const rng = makeRng(310);
    const host = hostWeights(SWIN_SHAPES, 11);
    const weights = uploadWeights(small, host);
    const xHost = randnT([3, 5, 5, 5, 12], rng);
    const x = upload(small, xHost);
    const big = upload(small, randnT([1, 8, 8, 8, 12], rng));
    try {
      const got = await swinBlock(x, lookup(weights), 'swinViT.layers1.0.blocks.1', 3, [5, 5, 5], [0, 0, 0], [7, 7, 7]).read();
      const want = refSwinBlock(xHost, lookup(host), 'swinViT.layers1.0.blocks.1', 3, [5, 5, 5], [0, 0, 0]);
      expectRel('swinBlock, attention by sample', 'out', got, want, 2e-5);
      expect(() => swinBlock(big, lookup(weights), 'swinViT.layers1.0.blocks.1', 3, [7, 7, 7], [0, 0, 0], [7, 7, 7])).toThrow(/one sample's q\/k\/v .* over the adapter's maxStorageBufferBindingSize/);
    } finally {
      disposeAll([x, big, ...weights.values()]);
      small.dispose();
    }
  });
});
