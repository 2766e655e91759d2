/**
 * float64 reference of MONAI's SwinTransformer (swinViT of SwinUNETR, use_v2 off), written
 * straight from the definitions: pre-norm blocks, zero padding after norm1, cyclic shift by −s,
 * window partition in (z, y, x) order, relative-position bias through MONAI's index (sliced
 * [:n, :n] for smaller stage windows), the −100 mask between shift regions, softmax, A·V, proj,
 * reverse, un-shift, crop, residuals and the GELU MLP; patch merging; hidden states through a
 * non-affine LayerNorm. Channels-last arrays [B, D, H, W, C]. It is the oracle for the GPU kernels.
 */
import { arr, type Arr } from './array';
import { gelu, layerNorm, matmul } from './ops';
import { mergeGather } from './merge';
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
  forEachWindow(x.shape, win, shift, ({ at, label }) => {
    const tokens = arr([n, C]); // padded tokens stay zero vectors (padding comes after norm1)
    at.forEach((s, t) => {
      if (s >= 0) for (let c = 0; c < C; c++) tokens.data[t * C + c] = x.data[s + c]!;
    });
    const qkv = linear(tokens, qkvW, qkvB); // [n, 3C] as (3, heads, hd)
    const attnOut = arr([n, C]);
    for (let h = 0; h < heads; h++) {
      const q = (i: number, e: number) => qkv.data[i * 3 * C + h * hd + e]! * hd ** -0.5;
      const k = (j: number, e: number) => qkv.data[j * 3 * C + C + h * hd + e]!;
      const v = (j: number, e: number) => qkv.data[j * 3 * C + 2 * C + h * hd + e]!;
      const row = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let m = -Infinity;
        for (let j = 0; j < n; j++) {
          let s = table.data[index[i * n + j]! * heads + h]!;
          for (let e = 0; e < hd; e++) s += q(i, e) * k(j, e);
          if (label[i] !== label[j]) s += -100;
          row[j] = s;
          m = Math.max(m, s);
        }
        let sum = 0;
        for (let j = 0; j < n; j++) sum += (row[j] = Math.exp(row[j]! - m));
        for (let e = 0; e < hd; e++) {
          let acc = 0;
          for (let j = 0; j < n; j++) acc += row[j]! * v(j, e);
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

/** One BasicLayer: `depth` blocks (odd ones shifted), then patch merging (MONAI ≤ 1.4 order). */
export function swinStage(x: Arr, W: Weights, p: string, depth: number, heads: number): Arr {
  const [, D, H, Wd] = x.shape as [number, number, number, number, number];
  const { window, shift } = windowAndShift([D, H, Wd], [7, 7, 7], [3, 3, 3]);
  let h = x;
  for (let i = 0; i < depth; i++) h = swinBlock(h, W, `${p}.blocks.${i}`, heads, window, i % 2 ? shift : [0, 0, 0]);
  const g = mergeGather(h, 'merging');
  const C8 = g.shape[4]!;
  const flat = arr([g.data.length / C8, C8], g.data);
  const y = linear(layerNorm(flat, W(`${p}.downsample.norm.weight`), W(`${p}.downsample.norm.bias`)), W(`${p}.downsample.reduction.weight`), null);
  return arr([...g.shape.slice(0, 4), C8 / 4], y.data);
}

/** SwinViT forward: the five hidden states, channels-last, each through a non-affine LayerNorm. */
export function swinViT(x: Arr, W: Weights, depths: number[], heads: number[], prefix = 'swinViT'): Arr[] {
  const norm = (a: Arr) => {
    const C = a.shape[4]!;
    return arr(a.shape, layerNorm(arr([a.data.length / C, C], a.data), null, null).data);
  };
  let h = patchConv3d(x, W(`${prefix}.patch_embed.proj.weight`), W(`${prefix}.patch_embed.proj.bias`), 2);
  const hidden = [norm(h)];
  depths.forEach((depth, i) => {
    h = swinStage(h, W, `${prefix}.layers${i + 1}.0`, depth, heads[i]!);
    hidden.push(norm(h));
  });
  return hidden;
}
