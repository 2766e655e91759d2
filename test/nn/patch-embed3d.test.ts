/**
 * Patch embedding (MONAI PatchEmbed: right zero-padding, Conv3d kernel = stride = patch, bias)
 * against a float64 convolution written as the plain window sum, forward and backward; the
 * reference's own backward against central finite differences; and the golden swin-tiny fixture:
 * its first hidden state is LayerNorm(no affine) of the patch embedding of its input volume.
 */
import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { layerNorm, permute, tensor } from '../../src/index';
import { patchEmbed3d } from '../../src/nn/patch-embed3d';
import { loadNifti } from '../../src/data/nifti-file';
import { fileSource } from '../../src/io/node-file';
import { readHeader, readTensor } from '../../src/io/safetensors';
import { makeRng, maxRelError, randn } from '../ref/array';
import { patchConv3d, patchConv3dBackward } from '../ref/conv';
import { checkVjp } from '../ref/finite-diff';
import { checkOp, expectNoLeak, randnT } from '../support/compare';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

describe('float64 patch-convolution reference', () => {
  it('its backward matches central finite differences (odd sizes, padding)', () => {
    const rng = makeRng(5);
    const x = randn([1, 2, 3, 5, 4], rng);
    const w = randn([3, 2, 2, 2, 2], rng);
    const b = randn([3], rng);
    const errs = checkVjp({
      f: ([xx, ww, bb]) => patchConv3d(xx!, ww!, bb!, 2),
      inputs: [x, w, b],
      vjp: ([xx, ww], g) => {
        const r = patchConv3dBackward(xx!, ww!, g, 2);
        return [r.dx, r.dw, r.dbias];
      },
      rng,
    });
    for (const e of errs) expect(e).toBeLessThan(1e-6);
  });
});

describe('patchEmbed3d on the GPU', () => {
  const cases: { name: string; x: number[]; E: number; p: number }[] = [
    { name: 'even sizes', x: [1, 1, 4, 6, 8], E: 5, p: 2 },
    { name: 'odd sizes (right padding on every axis)', x: [2, 3, 5, 7, 3], E: 4, p: 2 },
    { name: 'a single voxel', x: [1, 1, 1, 1, 1], E: 3, p: 2 },
    { name: 'patch 4 with padding', x: [1, 2, 9, 4, 6], E: 6, p: 4 },
  ];
  cases.forEach((c, i) => {
    it(`${c.name}: x [${c.x}], ${c.E} channels, patch ${c.p}`, async () => {
      const rng = makeRng(40 + i);
      await expectNoLeak(rt, () =>
        checkOp(rt, {
          op: 'patchEmbed3d',
          inputs: [randnT(c.x, rng), randnT([c.E, c.x[1]!, c.p, c.p, c.p], rng), randnT([c.E], rng)],
          names: ['x', 'weight', 'bias'],
          gpu: ([x, w, b]) => patchEmbed3d(x!, w!, b!, c.p),
          ref: ([x, w, b]) => patchConv3d(x!, w!, b!, c.p),
          vjp: ([x, w], g) => {
            const r = patchConv3dBackward(x!, w!, g, c.p);
            return [r.dx, r.dw, r.dbias];
          },
          bound: 2e-6,
          gradBound: 5e-6,
          rng,
        }),
      );
    });
  });
});

const FIXTURE = '/work/shared/fixtures/swin-tiny';
const fixtureDir = existsSync(`${FIXTURE}/weights.safetensors`) ? FIXTURE : new URL('../../../shared/fixtures/swin-tiny', import.meta.url).pathname;
const hasFixture = existsSync(`${fixtureDir}/weights.safetensors`);
if (!hasFixture) console.log(`swin-tiny fixture test skipped: ${fixtureDir} not found`);

describe('golden fixture (MONAI SwinViT, PyTorch float64 → float32)', () => {
  it.skipIf(!hasFixture)('hidden_states.0 = LayerNorm(PatchEmbed(input.nii)) matches PyTorch', async () => {
    const vol = await loadNifti(`${fixtureDir}/input.nii`);
    const weights = await fileSource(`${fixtureDir}/weights.safetensors`);
    const hidden = await fileSource(`${fixtureDir}/hidden.safetensors`);
    try {
      const wh = await readHeader(weights, 'weights.safetensors');
      const hh = await readHeader(hidden, 'hidden.safetensors');
      const w = await readTensor(weights, wh, 'swinViT.patch_embed.proj.weight');
      const b = await readTensor(weights, wh, 'swinViT.patch_embed.proj.bias');
      const ref = await readTensor(hidden, hh, 'hidden_states.0');
      const x = tensor(rt, vol.data, [1, 1, ...vol.shape]);
      const wt = tensor(rt, w.data as Float32Array, w.shape);
      const bt = tensor(rt, b.data as Float32Array, b.shape);
      const tokens = patchEmbed3d(x, wt, bt, 2);
      const normed = layerNorm(tokens); // MONAI's proj_out: LayerNorm over channels, no affine
      const out = permute(normed, [0, 4, 1, 2, 3]); // back to channels first, as MONAI returns it
      expect([...out.shape]).toEqual(ref.shape);
      const err = maxRelError(await out.read(), ref.data as Float32Array);
      console.log(`swin-tiny hidden_states.0: max rel error ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-5);
      for (const t of [x, wt, bt, tokens, normed, out]) t.dispose();
    } finally {
      await weights.close();
      await hidden.close();
    }
  });
});
