/**
 * float64 reference of MONAI's SwinTransformer (swinViT of SwinUNETR, use_v2 on or off), written
 * straight from the definitions: pre-norm blocks, zero padding after norm1, cyclic shift by −s,
 * window partition in (z, y, x) order, relative-position bias through MONAI's index (sliced
 * [:n, :n] for smaller stage windows), the −100 mask between shift regions, softmax, A·V, proj,
 * reverse, un-shift, crop, residuals and the GELU MLP; patch merging in any of MONAI's three
 * orders; with use_v2 a UnetResBlock (test/ref/unet.ts) before each stage; hidden states through a
 * non-affine LayerNorm (normalize) or raw. Channels-last arrays [B, D, H, W, C]. It is the oracle
 * for the GPU kernels.
 */
import { arr, type Arr } from './array';
import { gelu, layerNorm, matmul } from './ops';
import { mergeGather, ORDERS } from './merge';
import { toChannelsFirst, toChannelsLast, unetResBlock } from './unet';
import { patchConv3d } from './conv';
import { stageRelativeIndex, windowAndShift, type Vec3 } from '../../src/models/swin3d/window-geometry';
import { forEachWindow } from './windows';

export type Weights = (name: string) => Arr;

const linear = (x: Arr, w: Arr, b: Arr | null) => matmul(x, w, { transB: true, bias: b });

function blockAttention(x: Arr, W: Weights, p: string, heads: number, win: Vec3, shift: Vec3, configured: Vec3): Arr {
  const C = x.shape[4]!;
  const n = win[0] * win[1] * win[2];
  const hd = C / heads;
  const index = stageRelativeIndex(configured, win);
  const table = W(`${p}.attn.relative_position_bias_table`);
  const qkvW = W(`${p}.attn.qkv.weight`);
  const qkvB = W(`${p}.attn.qkv.bias`);
  const projW = W(`${p}.attn.proj.weight`);
  const projB = W(`${p}.attn.proj.bias`);
  const out = arr(x.shape);
  // table[index[i, j], h] gathered once per block as bias[h][i·n + j]
  const bias = Array.from({ length: heads }, (_, h) => Float64Array.from(index, (r) => table.data[r * heads + h]!));
  forEachWindow(x.shape, win, shift, ({ at, label }) => {
    const tokens = arr([n, C]); // padded tokens stay zero vectors (padding comes after norm1)
    at.forEach((s, t) => {
      if (s >= 0) for (let c = 0; c < C; c++) tokens.data[t * C + c] = x.data[s + c]!;
    });
    const qkv = linear(tokens, qkvW, qkvB); // [n, 3C] as (3, heads, hd)
    const attnOut = arr([n, C]);
    const scale = hd ** -0.5;
    const q = new Float64Array(n * hd);
    const k = new Float64Array(n * hd);
    const v = new Float64Array(n * hd);
    const row = new Float64Array(n);
    for (let h = 0; h < heads; h++) {
      // this head's q (scaled), k and v, token-major
      for (let t = 0; t < n; t++)
        for (let e = 0; e < hd; e++) {
          q[t * hd + e] = qkv.data[t * 3 * C + h * hd + e]! * scale;
          k[t * hd + e] = qkv.data[t * 3 * C + C + h * hd + e]!;
          v[t * hd + e] = qkv.data[t * 3 * C + 2 * C + h * hd + e]!;
        }
      const bh = bias[h]!;
      for (let i = 0; i < n; i++) {
        let m = -Infinity;
        for (let j = 0; j < n; j++) {
          let s = bh[i * n + j]!;
          for (let e = 0; e < hd; e++) s += q[i * hd + e]! * k[j * hd + e]!;
          if (label[i] !== label[j]) s += -100;
          row[j] = s;
          m = Math.max(m, s);
        }
        let sum = 0;
        for (let j = 0; j < n; j++) sum += (row[j] = Math.exp(row[j]! - m));
        for (let e = 0; e < hd; e++) {
          let acc = 0;
          for (let j = 0; j < n; j++) acc += row[j]! * v[j * hd + e]!;
          attnOut.data[i * C + h * hd + e] = acc / sum;
        }
      }
    }
    const y = linear(attnOut, projW, projB);
    // Back to the un-shifted, un-padded positions (the inverse roll); padded ones are dropped.
    at.forEach((s, t) => {
      if (s >= 0) for (let c = 0; c < C; c++) out.data[s + c] = y.data[t * C + c]!;
    });
  });
  return out;
}

export function swinBlock(x: Arr, W: Weights, p: string, heads: number, win: Vec3, shift: Vec3, configured: Vec3 = [7, 7, 7]): Arr {
  const C = x.shape[4]!;
  const flat = (a: Arr) => arr([a.data.length / C, C], a.data);
  const h = arr(x.shape, layerNorm(flat(x), W(`${p}.norm1.weight`), W(`${p}.norm1.bias`)).data);
  const a = blockAttention(h, W, p, heads, win, shift, configured);
  const x1 = arr(x.shape, x.data.map((v, i) => v + a.data[i]!));
  const m = linear(gelu(linear(layerNorm(flat(x1), W(`${p}.norm2.weight`), W(`${p}.norm2.bias`)), W(`${p}.mlp.linear1.weight`), W(`${p}.mlp.linear1.bias`))), W(`${p}.mlp.linear2.weight`), W(`${p}.mlp.linear2.bias`));
  return arr(x.shape, x1.data.map((v, i) => v + m.data[i]!));
}

/**
 * One BasicLayer: `depth` blocks (odd ones shifted by window // 2), then patch merging in the given
 * order (default MONAI ≤ 1.4's `merging`).
 */
export function swinStage(x: Arr, W: Weights, p: string, depth: number, heads: number, merge = 'merging', configured: Vec3 = [7, 7, 7]): Arr {
  const [, D, H, Wd] = x.shape as [number, number, number, number, number];
  const half: Vec3 = [Math.floor(configured[0] / 2), Math.floor(configured[1] / 2), Math.floor(configured[2] / 2)];
  const { window, shift } = windowAndShift([D, H, Wd], configured, half);
  let h = x;
  for (let i = 0; i < depth; i++) h = swinBlock(h, W, `${p}.blocks.${i}`, heads, window, i % 2 ? shift : [0, 0, 0], configured);
  if (!ORDERS[merge]) throw new Error(`unknown merge order '${merge}'`);
  const g = mergeGather(h, merge);
  const C8 = g.shape[4]!;
  const flat = arr([g.data.length / C8, C8], g.data);
  const y = linear(layerNorm(flat, W(`${p}.downsample.norm.weight`), W(`${p}.downsample.norm.bias`)), W(`${p}.downsample.reduction.weight`), null);
  return arr([...g.shape.slice(0, 4), C8 / 4], y.data);
}

export interface SwinViTRefOptions {
  /** Weight-name prefix without the trailing dot (default 'swinViT'). */
  prefix?: string;
  /** Patch-merging order: 'merging' (MONAI ≤ 1.4, default), 'merging-1.5' or 'mergingv2'. */
  merge?: string;
  /** use_v2: a UnetResBlock (`layers{i}c.0.layer.`) before each stage, after x_{i-1}_out is taken. */
  useV2?: boolean;
  /** normalize (default true): hidden states through a non-affine LayerNorm; false returns the raw stage outputs. */
  normalize?: boolean;
  /** Configured window (default 7³); shifts are window // 2. */
  window?: Vec3;
  /** Patch size (default 2). */
  patch?: number;
}

/**
 * SwinViT forward (MONAI SwinTransformer.forward): the five hidden states, channels-last, each
 * through a non-affine LayerNorm unless normalize is off. The fifth argument is the weight prefix
 * (the original signature) or the options.
 */
export function swinViT(x: Arr, W: Weights, depths: number[], heads: number[], opts: string | SwinViTRefOptions = {}): Arr[] {
  const o: SwinViTRefOptions = typeof opts === 'string' ? { prefix: opts } : opts;
  let h = swinViTEmbed(x, W, o);
  const hidden = [projOut(h, o)];
  depths.forEach((depth, i) => {
    h = swinViTLayer(h, W, i, depth, heads[i]!, o);
    hidden.push(projOut(h, o));
  });
  return hidden;
}

/** PatchEmbed: channels-first x [B, Cin, D, H, W] → channels-last [B, D', H', W', fs]. */
export function swinViTEmbed(x: Arr, W: Weights, o: SwinViTRefOptions = {}): Arr {
  const prefix = o.prefix ?? 'swinViT';
  return patchConv3d(x, W(`${prefix}.patch_embed.proj.weight`), W(`${prefix}.patch_embed.proj.bias`), o.patch ?? 2);
}

/** Stage i (0-based): with use_v2 the UnetResBlock layers{i+1}c, then BasicLayer layers{i+1} (blocks and merging). */
export function swinViTLayer(h: Arr, W: Weights, i: number, depth: number, heads: number, o: SwinViTRefOptions = {}): Arr {
  const prefix = o.prefix ?? 'swinViT';
  if (o.useV2) h = toChannelsLast(unetResBlock(toChannelsFirst(h), W, `${prefix}.layers${i + 1}c.0.layer.`));
  return swinStage(h, W, `${prefix}.layers${i + 1}.0`, depth, heads, o.merge ?? 'merging', o.window ?? [7, 7, 7]);
}

/** proj_out: LayerNorm over channels without affine (normalize), or the raw stage output. */
export function projOut(h: Arr, o: SwinViTRefOptions = {}): Arr {
  if (o.normalize === false) return h;
  const C = h.shape[4]!;
  return arr(h.shape, layerNorm(arr([h.data.length / C, C], h.data), null, null).data);
}
