/**
 * The GPU SwinViT (src/models/swin3d/swin-vit.ts) against the float64 reference (test/ref/swin.ts)
 * in the configurations the golden fixture does not cover: the three patch-merging orders, use_v2
 * (a UnetResBlock before each stage), normalize off, on non-cubic inputs whose sides need padding
 * (window padding and odd-size merging), with random weights from the model's own initValues.
 * Then the gradients of a tiny use_v2 SwinViT, for every parameter and the input, against central
 * finite differences of the float64 reference along random directions; the parameter counts of
 * the presets; and no GPU memory left behind.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { add, backward, mul, noGrad, sum, tensor, tidy } from '../../src/index';
import { countParams, paramShapes, PRESETS, swinViTConfig, swinViTParamShapes } from '../../src/models/swin3d/config';
import type { MergeOrder } from '../../src/ops/patch-merge';
import { swinViTForward } from '../../src/models/swin3d/swin-vit';
import { arr, makeRng, type Arr } from '../ref/array';
import { projOut, swinViT as refSwinViT, swinViTEmbed, swinViTLayer } from '../ref/swin';
import { randnT } from '../support/compare';
import { balancedDirection, directionalError, directionalTerms, disposeAll, hostWeights, lookup, perturbed, relStats, scaledDirection, uploadWeights, readGrads } from '../support/model-weights';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

const FS = 12;
const DEPTHS = [2, 2, 2, 2];
const HEADS = [3, 6, 12, 24];
/** One weight set with the use_v2 blocks; the use_v2-off model simply never reads layers{i}c. */
const SHAPES = swinViTParamShapes(swinViTConfig({ featureSize: FS, useV2: true }));

interface Variant {
  merge: MergeOrder;
  useV2: boolean;
  normalize: boolean;
  input: number[];
}

const FORWARD_BOUND = 1e-5;

describe('SwinViT variants on the GPU vs the float64 reference', () => {
  const weights = hostWeights(SHAPES, 11);
  const variants: Variant[] = [];
  // 34×18×22: stage sides 17×9×11 (window 7³ padded to 21×14×14, shift 3,3,3) → 9×5×6 (window
  // 7,5,6 padded to 14×5×6, shift 3,0,0) → 5×3×3 and 3×2×2 (window = sides: the [:n, :n] index
  // slice) → 2×1×1; odd sides merged with padding at every stage.
  for (const merge of ['merging', 'merging-1.5', 'mergingv2'] as MergeOrder[])
    for (const useV2 of [false, true]) variants.push({ merge, useV2, normalize: true, input: [1, 1, 34, 18, 22] });
  variants.push({ merge: 'merging', useV2: true, normalize: false, input: [1, 1, 34, 18, 22] });
  variants.push({ merge: 'merging-1.5', useV2: false, normalize: false, input: [1, 1, 26, 20, 30] });
  // Two volumes in a batch: nothing may mix them (InstanceNorm rows, windows, merging). (Sides of
  // 18 so that layers4c's InstanceNorms see 2×2×2 voxels: over the 2 voxels of an 18×10×12 input a
  // row can have a std of 4e-4, and dividing by it amplifies f32 rounding to ~5e-5 in hidden 4.)
  variants.push({ merge: 'mergingv2', useV2: true, normalize: true, input: [2, 1, 18, 18, 18] });
  // The issue's padded example: 64×48×40 → 32×24×20 → 16×12×10 → 8×6×5 → 4×3×3 → 2×2×2.
  variants.push({ merge: 'merging', useV2: true, normalize: true, input: [1, 1, 64, 48, 40] });

  let worst = 0;
  /** Reference hidden state 1 per merge order (34×18×22, use_v2 off), to check that the orders differ. */
  const byOrder = new Map<string, Arr>();
  for (const v of variants) {
    const label = `${v.merge}, use_v2 ${v.useV2 ? 'on' : 'off'}, normalize ${v.normalize ? 'on' : 'off'}, input ${v.input[0]! > 1 ? `${v.input[0]}× ` : ''}${v.input.slice(2).join('×')}`;
    it(label, async () => {
      const before = rt.memory().inUse;
      const x = randnT(v.input, makeRng(v.input.reduce((a, b) => a * 31 + b, 7)));
      const W = uploadWeights(rt, weights);
      const xt = tensor(rt, x.data, x.shape);
      const opts = { depths: DEPTHS, heads: HEADS, merge: v.merge, useV2: v.useV2, normalize: v.normalize };
      let t = performance.now();
      const hidden = noGrad(() => swinViTForward(xt, lookup(W), opts));
      const got = await Promise.all(hidden.map((h) => h.read()));
      const tGpu = performance.now() - t;
      t = performance.now();
      const ref = refSwinViT(x, lookup(weights), DEPTHS, HEADS, { merge: v.merge, useV2: v.useV2, normalize: v.normalize });
      const tRef = performance.now() - t;
      if (!v.useV2 && v.normalize && v.input[2] === 34) byOrder.set(v.merge, ref[1]!);
      const errs = ref.map((r, i) => {
        expect([...hidden[i]!.shape], `hidden ${i} shape`).toEqual(r.shape);
        return relStats(got[i]!, r.data);
      });
      console.log(
        `SwinViT ${label}: GPU ${tGpu.toFixed(0)} ms, f64 ref ${tRef.toFixed(0)} ms; max|Δ|/max|ref| per hidden state: ` +
          errs.map((e, i) => `h${i} [${ref[i]!.shape.slice(1).join('×')}] ${e.err.toExponential(2)} (max|ref| ${e.maxRef.toFixed(2)})`).join(', '),
      );
      for (const [i, e] of errs.entries()) {
        worst = Math.max(worst, e.err);
        expect(e.err, `hidden ${i}`).toBeLessThan(FORWARD_BOUND);
      }
      // normalize off returns the raw stage outputs: make sure the comparison tells them from the
      // LayerNorm-ed ones (with these weights they differ by 5–50 %, far above the bound).
      if (!v.normalize) for (const r of ref) expect(relStats(projOut(r).data, r.data).err).toBeGreaterThan(100 * FORWARD_BOUND);
      disposeAll([xt, ...hidden, ...W.values()]);
      await rt.sync();
      expect(rt.memory().inUse).toBe(before);
    });
  }
  it('summary: worst error; the three merge orders give different outputs', () => {
    console.log(`SwinViT variants: worst max|Δ|/max|ref| ${worst.toExponential(2)} (bound ${FORWARD_BOUND.toExponential(0)})`);
    const orders = [...byOrder.values()];
    expect(orders.length).toBe(3);
    for (let i = 0; i < 3; i++) for (let j = i + 1; j < 3; j++) expect(relStats(orders[i]!.data, orders[j]!.data).err).toBeGreaterThan(100 * FORWARD_BOUND);
  });
});

describe('SwinViT (use_v2) gradients on the GPU vs finite differences of the float64 reference', () => {
  it('every parameter and the input, along random directions per module, plus single coordinates', async () => {
    const before = rt.memory().inUse;
    const rng = makeRng(5);
    // 18×10×12 → 9×5×6 (window 7,5,6, shift 3,0,0, padded to 14 on D: 2 windows) → 5×3×3 → 3×2×2 → 2×1×1 → 1×1×1
    const input = [1, 1, 18, 10, 12];
    const o = { merge: 'merging' as MergeOrder, useV2: true, normalize: true };
    const weights = hostWeights(SHAPES, 23);
    const x = randnT(input, rng);
    const ref0 = refSwinViT(x, lookup(weights), DEPTHS, HEADS, o);
    // loss = Σ_i Σ w_i ⊙ hidden_i over all five hidden states (channels-last), fixed random w_i.
    const lossW = ref0.map((h) => randnT(h.shape, rng));
    const dot = (a: Arr, b: Arr) => a.data.reduce((s, v, j) => s + v * b.data[j]!, 0);

    // float64 loss with the pre-norm stage outputs cached: a change in stage k (0 = patch embedding,
    // k = layers{k}c + layers{k}) recomputes stages ≥ k only.
    const run = (xx: Arr, ww: Map<string, Arr>, from: number, h: Arr[]) => {
      for (let i = from; i <= DEPTHS.length; i++) h[i] = i === 0 ? swinViTEmbed(xx, lookup(ww), o) : swinViTLayer(h[i - 1]!, lookup(ww), i - 1, DEPTHS[i - 1]!, HEADS[i - 1]!, o);
    };
    const hBase: Arr[] = [];
    run(x, weights, 0, hBase);
    const lossOf = (h: Arr[]) => h.reduce((s, hi, i) => s + dot(projOut(hi, o), lossW[i]!), 0);
    const f = (ww: Map<string, Arr>, from: number, xx = x) => {
      const h = hBase.slice();
      run(xx, ww, from, h);
      return lossOf(h);
    };
    const L0 = lossOf(hBase);
    expect(L0).toBe(ref0.reduce((s, h, i) => s + dot(h, lossW[i]!), 0));

    // GPU gradients.
    const W = uploadWeights(rt, weights, true);
    const xt = tensor(rt, x.data, x.shape, { requiresGrad: true });
    const wts = lossW.map((w) => tensor(rt, w.data, w.shape));
    let t = performance.now();
    const hidden = swinViTForward(xt, lookup(W), { depths: DEPTHS, heads: HEADS, ...o });
    const loss = tidy(() => hidden.map((h, i) => sum(mul(h, wts[i]!))).reduce((a, b) => add(a, b)));
    const gpuLoss = await loss.item();
    backward(loss);
    const grads = await readGrads(W, xt);
    const tGpu = performance.now() - t;
    expect(Math.abs(gpuLoss - L0)).toBeLessThan(1e-5 * Math.abs(L0) + 1e-4);

    // One direction per module (patch embed, each use_v2 block, each Swin block, each merging) and one over the input.
    const groups = new Map<string, string[]>();
    for (const name of SHAPES.keys()) {
      const m = /^swinViT\.(patch_embed|layers\d+c\.0|layers\d+\.0\.blocks\.\d+|layers\d+\.0\.downsample)\./.exec(name);
      const g = m ? m[1]! : name;
      groups.set(g, [...(groups.get(g) ?? []), name]);
    }
    expect([...groups.values()].flat().length).toBe(SHAPES.size);
    const stageOf = (name: string) => (name.includes('patch_embed') ? 0 : Number(/layers(\d)/.exec(name)![1]));
    const h = 1e-6;
    const rows: string[] = [];
    const check = (label: string, dir: Map<string, Float64Array>, kind: 'dir' | 'coord') => {
      const from = dir.has('input') ? 0 : Math.min(...[...dir.keys()].map(stageOf));
      const xx = (s: number) => (dir.has('input') ? arr(x.shape, x.data.map((v, i) => v + s * dir.get('input')![i]!)) : x);
      const ww = (s: number) => (dir.has('input') ? weights : perturbed(weights, dir, s));
      const fd = (f(ww(h), from, xx(h)) - f(ww(-h), from, xx(-h))) / (2 * h);
      const an = directionalTerms(grads, dir);
      const rel = directionalError(an, fd);
      rows.push(`${label.padEnd(44)} GPU ${an.value.toExponential(6).padStart(13)}  FD ${fd.toExponential(6).padStart(13)}  |Δ|/|FD| ${(Math.abs(an.value - fd) / Math.abs(fd)).toExponential(2)}  |Δ|/max(|FD|, terms) ${rel.toExponential(2)}`);
      return { kind, rel };
    };
    const results: { kind: string; rel: number }[] = [];
    t = performance.now();
    for (const [g, names] of groups) results.push(check(`${g} (${names.length} tensors)`, balancedDirection(names, lookup(weights), lookup(grads), rng), 'dir'));
    results.push(check('input', new Map([['input', scaledDirection(x, rng)]]), 'dir'));
    // Single coordinates (the element with the largest |GPU gradient|) of tensors with quirks.
    for (const name of [
      'swinViT.patch_embed.proj.bias',
      'swinViT.layers1.0.blocks.0.attn.qkv.bias', // padded tokens' keys and values are the qkv bias
      'swinViT.layers1.0.blocks.1.attn.relative_position_bias_table', // shifted, masked windows
      'swinViT.layers3.0.blocks.1.attn.relative_position_bias_table', // smaller stage window: the [:n, :n] index slice
      'swinViT.layers1c.0.layer.conv2.conv.weight',
      'swinViT.layers2.0.downsample.reduction.weight',
    ]) {
      const g = grads.get(name)!;
      let k = 0;
      for (let i = 0; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[k]!)) k = i;
      const d = new Float64Array(g.length);
      d[k] = Math.max(Math.abs(weights.get(name)!.data[k]!), 0.02);
      results.push(check(`${name.replace('swinViT.', '')}[${k}]`, new Map([[name, d]]), 'coord'));
    }
    const tFd = performance.now() - t;
    const worstDir = Math.max(...results.filter((r) => r.kind === 'dir').map((r) => r.rel));
    const worstCoord = Math.max(...results.filter((r) => r.kind === 'coord').map((r) => r.rel));
    console.log(
      `SwinViT use_v2 gradients (fs ${FS}, input ${input.slice(2).join('×')}, ${SHAPES.size} parameter tensors in ${groups.size} groups; h ${h}): GPU forward+backward ${tGpu.toFixed(0)} ms, ` +
        `${2 * results.length} f64 evaluations ${tFd.toFixed(0)} ms; worst relative error: directions ${worstDir.toExponential(2)} (bound ${DIR_BOUND}), coordinates ${worstCoord.toExponential(2)} (bound ${DIR_BOUND})\n  ${rows.join('\n  ')}`,
    );
    expect(worstDir).toBeLessThan(DIR_BOUND);
    expect(worstCoord).toBeLessThan(DIR_BOUND);

    disposeAll([xt, loss, ...wts, ...hidden, ...W.values()]);
    await rt.sync();
    expect(rt.memory().inUse).toBe(before);
  });
});

const DIR_BOUND = 5e-4;

describe('parameter counts of the presets (MONAI names, analytic counts of shared/spec/coralbay_params.py)', () => {
  const M = (n: number) => (n / 1e6).toFixed(2);
  it('CoralBayU96B 53.16M, CoralBayU96H 847.28M, SwinViT fs 48 with/without use_v2 18.64M / 8.06M, swin-tiny 694,998', () => {
    expect(M(countParams(paramShapes(PRESETS['coralbay-b']!)))).toBe('53.16');
    expect(M(countParams(paramShapes(PRESETS['coralbay-h']!)))).toBe('847.28');
    expect(M(countParams(paramShapes({ kind: 'swin-vit', ...swinViTConfig({ featureSize: 48, useV2: true }) })))).toBe('18.64');
    expect(M(countParams(paramShapes({ kind: 'swin-vit', ...swinViTConfig({ featureSize: 48 }) })))).toBe('8.06');
    expect(M(countParams(paramShapes(PRESETS['swin-b']!)))).toBe('8.06');
    // fs 96 with use_v2, the table's third row: 73.89M + 138.10M = 212.00M.
    expect(M(countParams(paramShapes({ kind: 'coralbay-encoder', ...swinViTConfig({ featureSize: 96, useV2: true }) })))).toBe('212.00');
    expect(countParams(paramShapes(PRESETS['swin-tiny']!))).toBe(694_998);
    expect(paramShapes(PRESETS['swin-tiny']!).size).toBe(118);
    // Exact, from coralbay_params.py: encoder(48) = 18,637,362 + 34,526,784; encoder(192) = 294,863,778 + 552,412,416.
    expect(countParams(paramShapes(PRESETS['coralbay-b']!))).toBe(53_164_146);
    expect(countParams(paramShapes(PRESETS['coralbay-h']!))).toBe(847_276_194);
    expect(countParams(swinViTParamShapes(PRESETS['coralbay-b']!))).toBe(18_637_362);
    expect(countParams(paramShapes(PRESETS['coralbay-tiny']!))).toBe(3_514_134);
  });
});
