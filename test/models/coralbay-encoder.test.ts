/**
 * The CoralBay encoder on the GPU (src/models/swin3d/coralbay-encoder.ts: eva's SwinUNETREncoder,
 * MONAI SwinViT with use_v2 plus the UNETR encoder blocks) against the float64 reference
 * (test/ref/coralbay.ts): all six maps [enc0, enc1, enc2, enc3, hs3, dec4] and the 24·fs multiscale
 * embedding on a non-cubic input; the gradients of a scalar loss over the embedding and hs3 for every
 * parameter and the input, against central finite differences of the float64 reference along
 * random directions; the rejection of sides that are not multiples of 32; no GPU memory left behind.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { add, backward, mul, noGrad, sum, tensor, tidy } from '../../src/index';
import { paramShapes, PRESETS } from '../../src/models/swin3d/config';
import { CORALBAY_MAP_NAMES, coralBayEncoderForward, embeddingWidth, parseEmbeddingMaps } from '../../src/models/swin3d/coralbay-encoder';
import { arr, makeRng, type Arr } from '../ref/array';
import { conv3d as plainConv3d } from '../ref/conv3d';
import { coralBayEncoder, ENCODER_INPUTS, ENCODER_PREFIXES, spatialMean } from '../ref/coralbay';
import { projOut, swinViTEmbed, swinViTLayer } from '../ref/swin';
import { conv3dSame, toChannelsFirst, unetResBlock } from '../ref/unet';
import { randnT } from '../support/compare';
import { balancedDirection, directionalError, directionalTerms, disposeAll, hostWeights, lookup, perturbed, relStats, scaledDirection, uploadWeights, readGrads } from '../support/model-weights';
import type { Vec3 } from '../../src/models/swin3d/window-geometry';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

const CFG = PRESETS['coralbay-tiny']!; // fs 12, depths 2,2,2,2, heads 3,6,12,24, window 7, merging, use_v2
const FS = CFG.featureSize;
const DEPTHS = [...CFG.depths];
const HEADS = [...CFG.heads];
const SHAPES = paramShapes(CFG);
const GPU_OPTS = { depths: DEPTHS, heads: HEADS, merge: CFG.merge, useV2: true };
const FORWARD_BOUND = 1e-5;
const DEC4_BOUND = 2e-3;
const DEC4_LOCAL_BOUND = 1e-4;

/** The smallest per-channel std of encoder10's first convolution output (the rows its first InstanceNorm divides by). */
function minInstanceSpread(hs4: Arr, W: (name: string) => Arr): number {
  const c = conv3dSame(hs4, W('encoder10.layer.conv1.conv.weight'));
  const [B, C] = c.shape as [number, number];
  const S = c.data.length / (B * C);
  let min = Infinity;
  for (let r = 0; r < B * C; r++) {
    const row = c.data.subarray(r * S, (r + 1) * S);
    const m = row.reduce((a, v) => a + v, 0) / S;
    min = Math.min(min, Math.sqrt(row.reduce((a, v) => a + (v - m) ** 2, 0) / S));
  }
  return min;
}

describe('CoralBay encoder on the GPU vs the float64 reference', () => {
  it('the fast reference convolution equals the plain one (test/ref/conv3d.ts)', () => {
    const rng = makeRng(3);
    for (const [ci, co, k, sp] of [[2, 3, 3, [5, 4, 6]], [3, 2, 1, [3, 5, 2]], [1, 4, 3, [2, 1, 3]]] as [number, number, number, number[]][]) {
      const x = randnT([2, ci, ...sp], rng);
      const w = randnT([co, ci, k, k, k], rng);
      expect(relStats(conv3dSame(x, w).data, plainConv3d(x, w).data).err).toBeLessThan(1e-14);
    }
  });

  it('six maps and the 24·fs embedding, input 32×64×32', async () => {
    const before = rt.memory().inUse;
    const weights = hostWeights(SHAPES, 31);
    const x = randnT([1, 1, 32, 64, 32], makeRng(8));
    const W = uploadWeights(rt, weights);
    const xt = tensor(rt, x.data, x.shape);
    let t = performance.now();
    const out = noGrad(() => coralBayEncoderForward(xt, lookup(W), GPU_OPTS));
    const maps = await Promise.all(out.maps.map((m) => m.read()));
    const emb = await out.embedding.read();
    const tGpu = performance.now() - t;
    t = performance.now();
    const ref = coralBayEncoder(x, lookup(weights), { depths: DEPTHS, heads: HEADS, merge: CFG.merge });
    const tRef = performance.now() - t;
    expect(out.maps[4]).toBe(out.hidden[3]);
    expect([...out.embedding.shape]).toEqual([1, 24 * FS]);
    ref.hidden.forEach((r, i) => expect([...out.hidden[i]!.shape]).toEqual(r.shape));
    // Each encoder block also against the reference block applied to the GPU's own input to it
    // (x, or the GPU hidden state): its error alone, without what it inherits from the SwinViT.
    const gpuHidden = await Promise.all(out.hidden.map(async (hh) => arr(hh.shape, await hh.read())));
    const local = ENCODER_PREFIXES.map((p, k) => unetResBlock(ENCODER_INPUTS[k] === -1 ? x : gpuHidden[ENCODER_INPUTS[k]!]!, lookup(weights), p));
    const checks: { what: string; err: number; bound: number }[] = [];
    ref.maps.forEach((r, i) => {
      const name = CORALBAY_MAP_NAMES[i]!;
      expect([...out.maps[i]!.shape], name).toEqual(r.shape);
      checks.push({ what: `${name} [${r.shape.slice(1).join('×')}]`, err: relStats(maps[i]!, r.data).err, bound: name === 'dec4' ? DEC4_BOUND : FORWARD_BOUND });
      if (i !== 4) checks.push({ what: `${name} block alone`, err: relStats(maps[i]!, local[i < 4 ? i : 4]!.data).err, bound: name === 'dec4' ? DEC4_LOCAL_BOUND : FORWARD_BOUND });
    });
    // The embedding: the means of enc0…enc3 (96 values), then of dec4 (192).
    const split = 12 * FS - 4 * FS; // fs + fs + 2fs + 4fs = 8fs
    checks.push({ what: `embedding[0:${split}] (enc0…enc3)`, err: relStats(emb.subarray(0, split), ref.embedding.data.subarray(0, split)).err, bound: FORWARD_BOUND });
    checks.push({ what: `embedding[${split}:${24 * FS}] (dec4)`, err: relStats(emb.subarray(split), ref.embedding.data.subarray(split)).err, bound: DEC4_BOUND });
    checks.push({ what: `embedding [${24 * FS}]`, err: relStats(emb, ref.embedding.data).err, bound: DEC4_BOUND });
    // hs4 has 1×2×1 voxels here: encoder10's InstanceNorms see two values per channel, and where the
    // two are close the normalisation amplifies the f32 rounding of what comes in (hs4) and of
    // encoder10's own convolutions — hence dec4's own bounds.
    const spread = minInstanceSpread(ref.hidden[4]!, lookup(weights));
    console.log(
      `CoralBay encoder (fs ${FS}, use_v2) forward, input 32×64×32: GPU ${tGpu.toFixed(0)} ms, f64 ref ${tRef.toFixed(0)} ms; max|Δ|/max|ref| (bound):\n  ` +
        checks.map((c) => `${c.what.padEnd(34)} ${c.err.toExponential(2)} (${c.bound})`).join('\n  ') +
        `\n  smallest std of an encoder10 conv1 InstanceNorm row (2 voxels): ${spread.toExponential(2)}`,
    );
    for (const c of checks) expect(c.err, c.what).toBeLessThan(c.bound);
    disposeAll([xt, out.embedding, ...out.hidden, ...out.maps.filter((_, i) => i !== 4), ...W.values()]);
    await rt.sync();
    expect(rt.memory().inUse).toBe(before);
  });

  it('with anySide, a local crop of 16×24×20: the embedding matches float64', async () => {
    const weights = hostWeights(SHAPES, 32);
    const x = randnT([2, 1, 16, 24, 20], makeRng(9));
    const W = uploadWeights(rt, weights);
    const xt = tensor(rt, x.data, x.shape);
    const out = noGrad(() => coralBayEncoderForward(xt, lookup(W), { ...GPU_OPTS, anySide: true }));
    const ref = coralBayEncoder(x, lookup(weights), { depths: DEPTHS, heads: HEADS, merge: CFG.merge, anySide: true });
    expect([...out.embedding.shape]).toEqual([2, 24 * FS]);
    const split = 8 * FS;
    const emb = await out.embedding.read();
    const err = relStats(emb.subarray(0, split), ref.embedding.data.subarray(0, split)).err;
    console.log(`CoralBay encoder, anySide 2×16×24×20: embedding (enc0…enc3) max|Δ|/max|ref| ${err.toExponential(2)} (${FORWARD_BOUND})`);
    expect(err).toBeLessThan(FORWARD_BOUND);
    // dec4 here comes from an hs4 of 1×1×1 voxels, whose InstanceNorms normalise single values
    // (rounding amplified, as at test size above): its own bound.
    expect(relStats(emb, ref.embedding.data).err).toBeLessThan(DEC4_BOUND);
    disposeAll([xt, out.embedding, ...out.hidden, ...out.maps.filter((_, i) => i !== 4), ...W.values()]);
  });

  it('another set of embedding maps: the means of just those maps, in the order given', async () => {
    const weights = hostWeights(SHAPES, 33);
    const x = randnT([2, 1, 16, 16, 16], makeRng(10));
    const W = uploadWeights(rt, weights);
    const xt = tensor(rt, x.data, x.shape);
    const maps = parseEmbeddingMaps('enc3,enc0, enc2');
    expect(maps).toEqual(['enc3', 'enc0', 'enc2']);
    expect(embeddingWidth(FS, maps)).toBe(7 * FS);
    expect(embeddingWidth(FS)).toBe(24 * FS);
    const out = noGrad(() => coralBayEncoderForward(xt, lookup(W), { ...GPU_OPTS, anySide: true, embeddingMaps: maps }));
    const ref = coralBayEncoder(x, lookup(weights), { depths: DEPTHS, heads: HEADS, merge: CFG.merge, anySide: true });
    expect([...out.embedding.shape]).toEqual([2, 7 * FS]);
    // Columns of the reference multiscale embedding: enc0 [0, fs), enc2 [2fs, 4fs), enc3 [4fs, 8fs).
    const cols = (lo: number, hi: number) => Array.from({ length: hi - lo }, (_, i) => lo + i);
    const order = [...cols(4 * FS, 8 * FS), ...cols(0, FS), ...cols(2 * FS, 4 * FS)];
    const want = new Float64Array(2 * 7 * FS);
    for (let b = 0; b < 2; b++) order.forEach((c, j) => (want[b * 7 * FS + j] = ref.embedding.data[b * 24 * FS + c]!));
    const err = relStats(await out.embedding.read(), want).err;
    expect(err).toBeLessThan(FORWARD_BOUND);
    for (const bad of ['enc0,enc0', '', 'enc1,hs3']) expect(() => parseEmbeddingMaps(bad)).toThrow(/embedding maps/);
    disposeAll([xt, out.embedding, ...out.hidden, ...out.maps.filter((_, i) => i !== 4), ...W.values()]);
  });

  it('rejects sides that are not multiples of 32, before allocating anything', () => {
    const before = rt.memory().inUse;
    const W = () => {
      throw new Error('no weight should be read');
    };
    for (const shape of [[1, 1, 32, 48, 32], [1, 1, 96, 96, 80], [1, 1, 16, 32, 32], [1, 32, 32, 32]]) {
      const xt = tensor(rt, new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
      const inUse = rt.memory().inUse;
      expect(() => coralBayEncoderForward(xt, W, GPU_OPTS)).toThrow(/multiples of 32/);
      expect(rt.memory().inUse).toBe(inUse);
      xt.dispose();
    }
    expect(() => coralBayEncoder(arr([1, 1, 32, 40, 32]), () => arr([1]))).toThrow(/multiples of 32/);
    expect(rt.memory().inUse).toBe(before);
  });
});

/**
 * The reference loss L = Σ w_e ⊙ embedding + Σ w_3 ⊙ hs3, evaluated with caching: a perturbation
 * of SwinViT stage k (0 = patch embedding) recomputes stages ≥ k and the encoder blocks that read
 * them; a perturbation of one encoder block recomputes only that block.
 */
class RefLoss {
  /** Pre-norm stage outputs h0…h4 (channels-last), hidden states hs0…hs4 (channels-first), encoder outputs. */
  h: Arr[] = [];
  hs: Arr[] = [];
  enc: Arr[] = [];
  constructor(
    private readonly x: Arr,
    private readonly weights: Map<string, Arr>,
    private readonly we: Arr,
    private readonly w3: Arr,
    private readonly o: { useV2: boolean; merge: string; window: Vec3 },
  ) {
    this.swinFrom(x, weights, 0, this.h, this.hs);
    this.enc = ENCODER_PREFIXES.map((p, k) => unetResBlock(ENCODER_INPUTS[k] === -1 ? x : this.hs[ENCODER_INPUTS[k]!]!, lookup(weights), p));
  }

  private swinFrom(x: Arr, weights: Map<string, Arr>, k: number, h: Arr[], hs: Arr[]): void {
    const W = lookup(weights);
    for (let i = k; i <= DEPTHS.length; i++) {
      h[i] = i === 0 ? swinViTEmbed(x, W, this.o) : swinViTLayer(h[i - 1]!, W, i - 1, DEPTHS[i - 1]!, HEADS[i - 1]!, this.o);
      hs[i] = toChannelsFirst(projOut(h[i]!, this.o));
    }
  }

  value(enc: Arr[], hs3: Arr): number {
    const emb = enc.flatMap((e) => [...spatialMean(e).data]);
    return emb.reduce((a, v, i) => a + v * this.we.data[i]!, 0) + hs3.data.reduce((a, v, i) => a + v * this.w3.data[i]!, 0);
  }

  /** Σ |terms| of the base loss: the scale its f32 rounding is relative to. */
  magnitude(): number {
    const emb = this.enc.flatMap((e) => [...spatialMean(e).data]);
    return emb.reduce((a, v, i) => a + Math.abs(v * this.we.data[i]!), 0) + this.hs[3]!.data.reduce((a, v, i) => a + Math.abs(v * this.w3.data[i]!), 0);
  }

  base(): number {
    return this.value(this.enc, this.hs[3]!);
  }

  /** L with the SwinViT parameters of stage ≥ k replaced, or (k = −1) the input replaced too. */
  withSwin(k: number, weights: Map<string, Arr>, x = this.x): number {
    const h = this.h.slice();
    const hs = this.hs.slice();
    this.swinFrom(x, weights, Math.max(k, 0), h, hs);
    const enc = ENCODER_PREFIXES.map((p, m) => {
      const src = ENCODER_INPUTS[m]!;
      if (src === -1) return k === -1 ? unetResBlock(x, lookup(weights), p) : this.enc[m]!;
      return src >= k ? unetResBlock(hs[src]!, lookup(weights), p) : this.enc[m]!;
    });
    return this.value(enc, hs[3]!);
  }

  /** L with encoder block m's parameters replaced. */
  withEncoder(m: number, weights: Map<string, Arr>): number {
    const src = ENCODER_INPUTS[m]!;
    const enc = this.enc.slice();
    enc[m] = unetResBlock(src === -1 ? this.x : this.hs[src]!, lookup(weights), ENCODER_PREFIXES[m]!);
    return this.value(enc, this.hs[3]!);
  }
}

const GRAD_BOUND = 5e-4;

describe('CoralBay encoder gradients on the GPU vs finite differences of the float64 reference', () => {
  it('every parameter and the input (loss over the embedding and hs3), input 32³, window 5³', async () => {
    const before = rt.memory().inUse;
    // The preset with a 5³ window: a quarter of the float64 attention work of 7³ at 16³ tokens, and
    // still padding (16 → 20, 8 → 10), shifts (2) and, at stage 3 (4³), MONAI's [:n, :n] index slice.
    const cfg = { ...CFG, window: [5, 5, 5] as Vec3 };
    const shapes = paramShapes(cfg);
    const rng = makeRng(17);
    const weights = hostWeights(shapes, 41);
    const x = randnT([1, 1, 32, 32, 32], rng);
    const we = randnT([1, 24 * FS], rng);
    const w3 = randnT([1, 8 * FS, 2, 2, 2], rng, 0.1);

    let t = performance.now();
    const W = uploadWeights(rt, weights, true);
    const xt = tensor(rt, x.data, x.shape, { requiresGrad: true });
    const wet = tensor(rt, we.data, we.shape);
    const w3t = tensor(rt, w3.data, w3.shape);
    const out = coralBayEncoderForward(xt, lookup(W), { ...GPU_OPTS, window: cfg.window });
    const loss = tidy(() => add(sum(mul(out.embedding, wet)), sum(mul(out.maps[4]!, w3t))));
    const gpuLoss = await loss.item();
    backward(loss);
    const grads = await readGrads(W, xt);
    const tGpu = performance.now() - t;

    t = performance.now();
    const o = { useV2: true, merge: cfg.merge, window: cfg.window };
    const ref = new RefLoss(x, weights, we, w3, o);
    const L0 = ref.base();
    // The cached composition is the reference encoder itself.
    const full = coralBayEncoder(x, lookup(weights), { depths: DEPTHS, heads: HEADS, ...o });
    expect(Math.abs(L0 - ref.value(full.maps.filter((_, i) => i !== 4), full.maps[4]!))).toBeLessThan(1e-12 * Math.abs(L0));
    expect(Math.abs(gpuLoss - L0)).toBeLessThan(1e-5 * ref.magnitude());
    // hs4 is 1³ here: encoder10's InstanceNorms see one value per channel and output exactly 0, so
    // dec4 = LeakyReLU(hs4) whatever encoder10's weights are, and their gradient is exactly 0.
    for (const name of shapes.keys()) if (name.startsWith('encoder10.')) expect(grads.get(name)!.every((v) => v === 0), name).toBe(true);

    // Directions: SwinViT patch embedding, each SwinViT stage (layers{k}c + layers{k}), each encoder block, the input.
    const h = 1e-6;
    const groupOf = (name: string): string => {
      const m = /^swinViT\.layers(\d)/.exec(name);
      if (m) return `swinViT stage ${m[1]}`;
      if (name.startsWith('swinViT.patch_embed')) return 'swinViT patch_embed';
      return name.slice(0, name.indexOf('.'));
    };
    const groups = new Map<string, string[]>();
    for (const name of shapes.keys()) groups.set(groupOf(name), [...(groups.get(groupOf(name)) ?? []), name]);
    expect(groups.size).toBe(10);
    const evalGroup = (g: string, ww: Map<string, Arr>): number => {
      if (g === 'swinViT patch_embed') return ref.withSwin(0, ww);
      if (g.startsWith('swinViT stage')) return ref.withSwin(Number(g.slice(-1)), ww);
      return ref.withEncoder(ENCODER_PREFIXES.indexOf(`${g}.layer.` as (typeof ENCODER_PREFIXES)[number]), ww);
    };
    const rows: string[] = [];
    const results: { kind: string; rel: number }[] = [];
    const report = (label: string, kind: string, an: { value: number; scale: number }, fd: number) => {
      const rel = directionalError(an, fd);
      results.push({ kind, rel });
      rows.push(`${label.padEnd(44)} GPU ${an.value.toExponential(6).padStart(13)}  FD ${fd.toExponential(6).padStart(13)}  |Δ|/max(|FD|, terms) ${rel.toExponential(2)}`);
    };
    for (const [g, names] of groups) {
      if (g === 'encoder10') continue; // zero gradient, checked above
      const dir = balancedDirection(names, lookup(weights), lookup(grads), rng);
      const fd = (evalGroup(g, perturbed(weights, dir, h)) - evalGroup(g, perturbed(weights, dir, -h))) / (2 * h);
      report(`${g} (${names.length} tensors)`, 'dir', directionalTerms(grads, dir), fd);
    }
    {
      const d = scaledDirection(x, rng);
      const fd = (ref.withSwin(-1, weights, arr(x.shape, x.data.map((v, i) => v + h * d[i]!))) - ref.withSwin(-1, weights, arr(x.shape, x.data.map((v, i) => v - h * d[i]!)))) / (2 * h);
      report('input', 'dir', directionalTerms(grads, new Map([['input', d]])), fd);
    }
    // Single coordinates (the largest |GPU gradient|) of the largest live tensor and of encoder1's convolutions.
    for (const name of ['encoder4.layer.conv2.conv.weight', 'encoder1.layer.conv1.conv.weight', 'swinViT.layers4c.0.layer.conv1.conv.weight']) {
      const g = grads.get(name)!;
      let k = 0;
      for (let i = 0; i < g.length; i++) if (Math.abs(g[i]!) > Math.abs(g[k]!)) k = i;
      const d = new Float64Array(g.length);
      d[k] = Math.max(Math.abs(weights.get(name)!.data[k]!), 0.02);
      const dir = new Map([[name, d]]);
      const grp = groupOf(name);
      const fd = (evalGroup(grp, perturbed(weights, dir, h)) - evalGroup(grp, perturbed(weights, dir, -h))) / (2 * h);
      report(`${name}[${k}]`, 'coord', directionalTerms(grads, dir), fd);
    }
    const tFd = performance.now() - t;
    const worstDir = Math.max(...results.filter((r) => r.kind === 'dir').map((r) => r.rel));
    const worstCoord = Math.max(...results.filter((r) => r.kind === 'coord').map((r) => r.rel));
    console.log(
      `CoralBay encoder gradients (fs ${FS}, use_v2, window 5³, input 32³, ${shapes.size} parameter tensors in ${groups.size} groups + input; h ${h}): GPU forward+backward ${tGpu.toFixed(0)} ms, f64 reference + finite differences ${tFd.toFixed(0)} ms; ` +
        `worst error: directions ${worstDir.toExponential(2)}, coordinates ${worstCoord.toExponential(2)} (bound ${GRAD_BOUND})\n  ${rows.join('\n  ')}`,
    );
    expect(worstDir).toBeLessThan(GRAD_BOUND);
    expect(worstCoord).toBeLessThan(GRAD_BOUND);

    disposeAll([xt, wet, w3t, loss, out.embedding, ...out.hidden, ...out.maps.filter((_, i) => i !== 4), ...W.values()]);
    await rt.sync();
    expect(rt.memory().inUse).toBe(before);
  });
});
