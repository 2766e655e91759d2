/**
 * MONAI's SwinTransformer (the swinViT of SwinUNETR) forward on the GPU, composed from reef's ops:
 * patch embedding, (with use_v2) a UnetResBlock before each stage, pre-norm Swin blocks with the
 * fused shifted-window attention, patch merging, and the five hidden states (through a non-affine
 * LayerNorm unless `normalize` is off). Channels-last between ops; weights are looked up by MONAI's
 * state-dict names under a prefix (default `swinViT.`).
 */
import { ReefError } from '../../gpu/errors.js';
import { add, mul } from '../../ops/binary.js';
import { layerNorm } from '../../ops/layernorm.js';
import { matmul } from '../../ops/matmul.js';
import { mergeGather3d, type MergeOrder } from '../../ops/patch-merge.js';
import { gelu, scale } from '../../ops/pointwise.js';
import { permute, reshape } from '../../ops/shape.js';
import { windowAttention3d } from '../../ops/window-attention3d.js';
import { patchEmbed3d } from '../../nn/patch-embed3d.js';
import { unetResBlock } from '../../nn/unet-res-block.js';
import { tensor } from '../../tensor/create.js';
import { tidy, type Tensor } from '../../tensor/tensor.js';
import { windowAndShift, type Vec3 } from './window-geometry.js';
import { recomputed } from './recompute.js';
import { bySampleGroups } from './sample-groups.js';

export interface SwinViTOptions {
  depths: readonly number[];
  heads: readonly number[];
  window?: Vec3;
  patch?: number;
  merge?: MergeOrder;
  useV2?: boolean;
  normalize?: boolean;
  prefix?: string;
  /** iBOT masking of the student: masked patch embeddings are replaced by a learned token. */
  mask?: PatchMask;
  /** Stochastic depth for training (absent: off, as in inference). */
  dropPath?: DropPath;
  /** Activation recomputation: each stage keeps only its input and is run again in backward. */
  recompute?: boolean;
}

/**
 * Stochastic depth as MONAI's SwinViT: block k of the T blocks drops its attention and MLP
 * branches for a whole sample with probability rate·k/(T − 1) (a linear ramp from 0), and scales
 * a kept branch by 1/(1 − p). `uniform` draws in [0, 1): two draws per sample per block, in order.
 */
export interface DropPath {
  rate: number;
  uniform: () => number;
}

/** [B, 1, 1, 1, 1]: 0 for a dropped sample, 1/(1 − p) for a kept one; null when p is 0. */
function dropPathScale(x: Tensor, p: number, uniform: () => number): Tensor | null {
  if (p <= 0) return null;
  if (!(p < 1)) throw new ReefError(`drop-path rate ${p} must be below 1`);
  const B = x.shape[0]!;
  const keep = Float32Array.from({ length: B }, () => (uniform() < p ? 0 : 1 / (1 - p)));
  return tensor(x.rt, keep, [B, 1, 1, 1, 1], { name: 'drop_path', dtype: x.dtype });
}

export interface PatchMask {
  /** [B, D/2, H/2, W/2, 1] on the patch-embed grid, channels-last: 1 where masked, else 0. */
  patches: Tensor;
  /** [C] the mask token (a trained parameter). */
  token: Tensor;
}

/** h where the mask is 0, the token where it is 1, exactly: h·(1 − m) + m·token. */
export function applyPatchMask(h: Tensor, mask: PatchMask): Tensor {
  const [B, D, H, W, C] = h.shape as [number, number, number, number, number];
  const want = [B, D, H, W, 1];
  if (mask.patches.shape.join() !== want.join() || mask.token.shape.join() !== String(C)) {
    throw new ReefError(`iBOT mask ${mask.patches.describe()} and token ${mask.token.describe()} do not fit patch embeddings ${h.describe()}: expected [${want.join(', ')}] and [${C}]`);
  }
  return tidy(() => add(mul(h, scale(mask.patches, -1, 1)), mul(mask.patches, mask.token)));
}

export type WeightLookup = (name: string) => Tensor;

function linear(x: Tensor, W: WeightLookup, name: string, bias = true): Tensor {
  return matmul(x, W(`${name}.weight`), { transB: true, bias: bias ? W(`${name}.bias`) : null });
}

/**
 * Window attention never mixes samples, so a q/k/v projection larger than one storage binding
 * (4 global crops of 96³ at fs 48: 256 MiB) runs as consecutive groups of whole samples.
 */
function attentionByBatch(qkv: Tensor, attend: (part: Tensor) => Tensor): Tensor {
  const B = qkv.shape[0]!;
  const perSample = qkv.byteSize / B;
  const limit = qkv.rt.caps.maxStorageBufferBindingSize;
  const group = Math.floor(limit / perSample);
  if (group === 0) throw new ReefError(`window attention: one sample's q/k/v ${qkv.describe()} takes ${perSample} bytes, over the adapter's maxStorageBufferBindingSize ${limit}; use smaller crops`);
  return bySampleGroups(qkv, group, attend);
}

/** One pre-norm Swin block (MONAI SwinTransformerBlock), x: [B, D, H, W, C]; `drop`: its drop-path rate. */
export function swinBlock(x: Tensor, W: WeightLookup, p: string, heads: number, window: Vec3, shift: Vec3, configured: Vec3, drop?: { p: number; uniform: () => number }): Tensor {
  return tidy(() => {
    const branch = (t: Tensor) => {
      const keep = drop ? dropPathScale(x, drop.p, drop.uniform) : null;
      return keep ? mul(t, keep) : t;
    };
    const C = x.shape[4]!;
    const N = x.size / C;
    const h = reshape(layerNorm(x, W(`${p}.norm1.weight`), W(`${p}.norm1.bias`)), [N, C]);
    // The attention reads q, k and v straight from the projection's [N, 3C] rows.
    const qkv = reshape(linear(h, W, `${p}.attn.qkv`), [...x.shape.slice(0, 4), 3 * C]);
    const attn = attentionByBatch(qkv, (part) => windowAttention3d({ qkv: part, qkvBias: W(`${p}.attn.qkv.bias`), table: W(`${p}.attn.relative_position_bias_table`), heads, window, shift, configuredWindow: configured }));
    const x1 = add(x, branch(reshape(linear(reshape(attn, [N, C]), W, `${p}.attn.proj`), x.shape)));
    const h2 = reshape(layerNorm(x1, W(`${p}.norm2.weight`), W(`${p}.norm2.bias`)), [N, C]);
    const mlp = linear(gelu(linear(h2, W, `${p}.mlp.linear1`)), W, `${p}.mlp.linear2`);
    return add(x1, branch(reshape(mlp, x.shape)));
  });
}

/** One BasicLayer: blocks (odd ones shifted by half a window), then patch merging to 2C. */
export function swinStage(x: Tensor, W: WeightLookup, p: string, depth: number, heads: number, cfg: SwinViTOptions, firstBlock = 0): Tensor {
  const configured = cfg.window ?? [7, 7, 7];
  const [, D, H, Wd] = x.shape as [number, number, number, number, number];
  const half: Vec3 = [Math.floor(configured[0] / 2), Math.floor(configured[1] / 2), Math.floor(configured[2] / 2)];
  const { window, shift } = windowAndShift([D, H, Wd], configured, half);
  let h = x;
  const total = cfg.depths.reduce((a, b) => a + b, 0);
  for (let i = 0; i < depth; i++) {
    const drop = cfg.dropPath && cfg.dropPath.rate > 0 ? { p: (cfg.dropPath.rate * (firstBlock + i)) / Math.max(total - 1, 1), uniform: cfg.dropPath.uniform } : undefined;
    const next = swinBlock(h, W, `${p}.blocks.${i}`, heads, window, i % 2 ? shift : [0, 0, 0], configured, drop);
    if (h !== x) h.dispose();
    h = next;
  }
  const out = tidy(() => linear(layerNorm(mergeGather3d(h, cfg.merge ?? 'merging'), W(`${p}.downsample.norm.weight`), W(`${p}.downsample.norm.bias`)), W, `${p}.downsample.reduction`, false));
  if (h !== x) h.dispose();
  return out;
}

/** A channels-first block applied to channels-last x: [B, D, H, W, C] → [B, D, H, W, C']. */
export function channelsFirst(x: Tensor, fn: (cf: Tensor) => Tensor): Tensor {
  return tidy(() => permute(fn(permute(x, [0, 4, 1, 2, 3])), [0, 2, 3, 4, 1]));
}

/**
 * The five hidden states [B, D/2^(i+1), …, C·2^i], channels-last, each LayerNorm-ed without affine
 * (or, with normalize off, the raw stage outputs). x: [B, Cin, D, H, W] as MONAI takes it.
 */
export function swinViTForward(x: Tensor, W: WeightLookup, cfg: SwinViTOptions): Tensor[] {
  const prefix = cfg.prefix ?? 'swinViT.';
  const P = (name: string) => W(`${prefix}${name}`);
  const out = (t: Tensor) => (cfg.normalize === false ? reshape(t, t.shape) : layerNorm(t));
  let h = patchEmbed3d(x, P('patch_embed.proj.weight'), P('patch_embed.proj.bias'), cfg.patch ?? 2);
  if (cfg.mask) {
    const embedded = h;
    try {
      h = applyPatchMask(embedded, cfg.mask);
    } finally {
      embedded.dispose();
    }
  }
  const hidden = [out(h)];
  try {
    cfg.depths.forEach((depth, i) => {
      const firstBlock = cfg.depths.slice(0, i).reduce((a, b) => a + b, 0);
      const stage = (x: Tensor, Wl: WeightLookup, dropPath: DropPath | undefined): Tensor => {
        const conv = cfg.useV2 ? channelsFirst(x, (cf) => unetResBlock(cf, Wl, `layers${i + 1}c.0.layer.`)) : x;
        try {
          return swinStage(conv, Wl, `layers${i + 1}.0`, depth, cfg.heads[i]!, { ...cfg, dropPath }, firstBlock);
        } finally {
          if (conv !== x) conv.dispose();
        }
      };
      const next = cfg.recompute ? recomputed(h, P, cfg.dropPath, stage) : stage(h, P, cfg.dropPath);
      h.dispose();
      h = next;
      hidden.push(out(h));
    });
  } catch (e) {
    for (const t of hidden) t.dispose();
    throw e;
  } finally {
    h.dispose();
  }
  return hidden;
}
