/**
 * iBOT masking in the student SwinViT: masked patch embeddings become the mask token exactly, the
 * others are untouched; an all-zero mask changes nothing (bitwise); the token's gradient is the sum
 * of the upstream gradient over the masked positions (float64), and the patch embedding gets none
 * there; a mask of the wrong grid is a clear error.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { backward, mul, ReefError, sum, tensor, tidy } from '../../src/index';
import { swinViTConfig, swinViTParamShapes } from '../../src/models/swin3d/config';
import { swinViTForward } from '../../src/models/swin3d/swin-vit';
import { makeRng } from '../ref/array';
import { randnT } from '../support/compare';
import { disposeAll, hostWeights, lookup, uploadWeights } from '../support/model-weights';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

const cfg = { ...swinViTConfig({ featureSize: 12 }), depths: [2, 2, 2, 2], heads: [3, 6, 12, 24], normalize: false };
const SHAPES = swinViTParamShapes(swinViTConfig({ featureSize: 12 }));

describe('iBOT mask token in the SwinViT', () => {
  it('replaces exactly the masked patch embeddings; an empty mask changes nothing; token gradient = Σ over masked of the upstream gradient', async () => {
    const rng = makeRng(41);
    const weights = uploadWeights(rt, hostWeights(SHAPES, 5));
    const W = lookup(weights);
    const grid = [2, 5, 4, 3]; // B, D/2, H/2, W/2 of a 10×8×6 input
    const n = grid.reduce((a, b) => a * b);
    const maskValues = Float32Array.from({ length: n }, () => (rng.uniform() < 0.4 ? 1 : 0));
    const x = tensor(rt, Float32Array.from(randnT([2, 1, 10, 8, 6], rng).data), [2, 1, 10, 8, 6]);
    const token = tensor(rt, Float32Array.from(randnT([12], rng).data), [12], { requiresGrad: true });
    const mask = tensor(rt, maskValues, [...grid, 1]);
    const none = tensor(rt, new Float32Array(n), [...grid, 1]);
    const upstream = Float32Array.from(randnT([...grid, 12], rng).data);
    const r = tensor(rt, upstream, [...grid, 12]);
    try {
      const plain = swinViTForward(x, W, cfg);
      const empty = swinViTForward(x, W, { ...cfg, mask: { patches: none, token } });
      for (let i = 0; i < 5; i++) expect(Buffer.from((await empty[i]!.read()).buffer).equals(Buffer.from((await plain[i]!.read()).buffer)), `hidden ${i}`).toBe(true);
      disposeAll(empty);

      const masked = swinViTForward(x, W, { ...cfg, mask: { patches: mask, token } });
      const h0 = await masked[0]!.read();
      const p0 = await plain[0]!.read();
      const tok = await token.read();
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < 12; c++) expect(h0[i * 12 + c]).toBe(maskValues[i] ? tok[c] : p0[i * 12 + c]);
      }
      const loss = tidy(() => sum(mul(masked[0]!, r)));
      backward(loss);
      const g = await token.grad!.read();
      const want = new Float64Array(12);
      for (let i = 0; i < n; i++) if (maskValues[i]) for (let c = 0; c < 12; c++) want[c] = want[c]! + upstream[i * 12 + c]!;
      const scale = Math.max(...want.map(Math.abs));
      for (let c = 0; c < 12; c++) expect(Math.abs(g[c]! - want[c]!) / scale).toBeLessThan(1e-6);
      loss.dispose();
      disposeAll(masked);
      disposeAll(plain);
    } finally {
      token.grad?.dispose();
      disposeAll([x, token, mask, none, r, ...weights.values()]);
    }
  });

  it('a mask that does not match the patch grid is a clear error', () => {
    const weights = uploadWeights(rt, hostWeights(SHAPES, 6));
    const x = tensor(rt, new Float32Array(1 * 8 * 8 * 8), [1, 1, 8, 8, 8]);
    const token = tensor(rt, new Float32Array(12), [12]);
    const bad = tensor(rt, new Float32Array(27), [1, 3, 3, 3, 1]);
    try {
      expect(() => swinViTForward(x, lookup(weights), { ...cfg, mask: { patches: bad, token } })).toThrow(ReefError);
      expect(() => swinViTForward(x, lookup(weights), { ...cfg, mask: { patches: bad, token } })).toThrow(/expected \[1, 4, 4, 4, 1\]/);
    } finally {
      disposeAll([x, token, bad, ...weights.values()]);
    }
  });
});
