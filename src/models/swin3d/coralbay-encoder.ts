/**
 * The CoralBay encoder (eva's SwinUNETREncoder): MONAI's SwinViT (use_v2) plus the UNETR encoder
 * blocks, returning the channels-first maps [enc0, enc1, enc2, enc3, hs3, dec4] and the multiscale
 * embedding (spatial means of enc0, enc1, enc2, enc3 and dec4 — hs3 skipped — concatenated: 24·fs;
 * another set of maps as an option).
 *
 *   enc0 = encoder1(x)       enc1 = encoder2(hs0)   enc2 = encoder3(hs1)
 *   enc3 = encoder4(hs2)     dec4 = encoder10(hs4)
 */
import { ReefError } from '../../gpu/errors.js';
import { mean } from '../../ops/reduce.js';
import { concat, permute } from '../../ops/shape.js';
import { bySampleGroups } from './sample-groups.js';
import { isGradEnabled } from '../../tensor/grad-mode.js';
import { unetResBlock } from '../../nn/unet-res-block.js';
import type { Tensor } from '../../tensor/tensor.js';
import { swinViTForward, type SwinViTOptions, type WeightLookup } from './swin-vit.js';
import { recomputed } from './recompute.js';

export interface CoralBayOutputs {
  /** The five SwinViT hidden states, channels-first [B, C, D, H, W]. */
  hidden: Tensor[];
  /** [enc0, enc1, enc2, enc3, hs3, dec4], channels-first (hs3 is hidden[3] itself, not a copy). */
  maps: Tensor[];
  /** [B, 24·fs]. */
  embedding: Tensor;
}

export const CORALBAY_MAP_NAMES = ['enc0', 'enc1', 'enc2', 'enc3', 'hs3', 'dec4'] as const;

/** The decoder joins the /32 and /16 maps, so every side must be a multiple of 32. */
export function checkCoralBayInput(shape: readonly number[]): void {
  const sides = shape.slice(2);
  if (shape.length !== 5 || sides.some((s) => s % 32 !== 0)) {
    throw new ReefError(`CoralBay encoder: input [${shape.join(', ')}] must be [B, C, D, H, W] with D, H, W multiples of 32 (pad or crop the volume; SwinViT alone takes any size)`);
  }
}

export interface CoralBayOptions extends SwinViTOptions {
  /**
   * Skip the multiple-of-32 check: the maps and the embedding need no decoder, so pretraining runs
   * its local crops (48³, 16³) through the encoder as they are; the SwinViT pads odd sizes.
   */
  anySide?: boolean;
  /**
   * The maps whose spatial means make the embedding, in this order (default eva's multiscale set:
   * enc0, enc1, enc2, enc3, dec4). Small crops may leave dec4 out: at 32³ it is one voxel, where
   * encoder10's instance norms output 0, so dec4 is leakyRelu(hs4), a token that mixes every patch
   * with position-specific weights and that two views of one region do not share at initialisation.
   */
  embeddingMaps?: readonly EmbeddingMap[];
  /** Output bytes per group when UNETR blocks run by groups of samples (default BLOCK_GROUP_BYTES). */
  blockGroupBytes?: number;
}

export type EmbeddingMap = 'enc0' | 'enc1' | 'enc2' | 'enc3' | 'dec4';
export const MULTISCALE_MAPS: readonly EmbeddingMap[] = ['enc0', 'enc1', 'enc2', 'enc3', 'dec4'];
const MAP_INDEX: Record<EmbeddingMap, number> = { enc0: 0, enc1: 1, enc2: 2, enc3: 3, dec4: 5 };
/** Channels of each map, in units of the feature size. */
const MAP_WIDTH: Record<EmbeddingMap, number> = { enc0: 1, enc1: 1, enc2: 2, enc3: 4, dec4: 16 };

/** Width of the embedding made of these maps' means (24·fs for the multiscale set). */
export function embeddingWidth(featureSize: number, maps: readonly EmbeddingMap[] = MULTISCALE_MAPS): number {
  return maps.reduce((n, m) => n + MAP_WIDTH[m] * featureSize, 0);
}

/** Parses a list such as 'enc0,enc1,enc2,enc3' (no repeats, at least one). */
export function parseEmbeddingMaps(text: string, what = 'embedding maps'): EmbeddingMap[] {
  const names = text.split(',').map((t) => t.trim()).filter((t) => t.length > 0);
  for (const n of names) if (!(n in MAP_INDEX)) throw new ReefError(`${what} '${text}': '${n}' is not one of ${MULTISCALE_MAPS.join(', ')}`);
  if (names.length === 0 || new Set(names).size !== names.length) throw new ReefError(`${what} '${text}': expected distinct names from ${MULTISCALE_MAPS.join(', ')}`);
  return names as EmbeddingMap[];
}

/** Default output bytes of one group of a UNETR block run by groups of samples. */
export const BLOCK_GROUP_BYTES = 64 * 2 ** 20;

export function coralBayEncoderForward(x: Tensor, W: WeightLookup, cfg: CoralBayOptions): CoralBayOutputs {
  if (!cfg.anySide) checkCoralBayInput(x.shape);
  const hidden: Tensor[] = [];
  const maps: Tensor[] = [];
  try {
    for (const h of swinViTForward(x, W, { ...cfg, useV2: cfg.useV2 ?? true })) {
      hidden.push(permute(h, [0, 4, 1, 2, 3]));
      h.dispose();
    }
    // With recomputation the UNETR blocks keep only their inputs too (encoder1's is the raw crop).
    // A block keeps ~9 maps of its output's size alive while it runs, so when nothing of it is kept
    // for backward (recomputed, or no gradient) it runs by groups of whole samples.
    const block = (input: Tensor, prefix: string) => {
      const one = (t: Tensor) => (cfg.recompute ? recomputed(t, W, undefined, (u, Wl) => unetResBlock(u, Wl, prefix)) : unetResBlock(t, W, prefix));
      if (!(cfg.recompute || !isGradEnabled())) return one(input);
      // Groups whose f32 outputs stay under the budget, at least one sample each.
      const outChannels = W(`${prefix}conv1.conv.weight`).shape[0]!;
      const sampleOutBytes = (4 * outChannels * input.size) / input.shape[1]! / input.shape[0]!;
      return bySampleGroups(input, Math.max(1, Math.floor((cfg.blockGroupBytes ?? BLOCK_GROUP_BYTES) / sampleOutBytes)), one);
    };
    maps.push(block(x, 'encoder1.layer.'));
    maps.push(block(hidden[0]!, 'encoder2.layer.'));
    maps.push(block(hidden[1]!, 'encoder3.layer.'));
    maps.push(block(hidden[2]!, 'encoder4.layer.'));
    maps.push(hidden[3]!);
    maps.push(block(hidden[4]!, 'encoder10.layer.'));
    const pooled = (cfg.embeddingMaps ?? MULTISCALE_MAPS).map((m) => mean(maps[MAP_INDEX[m]]!, [2, 3, 4]));
    const embedding = concat(pooled, 1);
    for (const p of pooled) p.dispose();
    return { hidden, maps, embedding };
  } catch (e) {
    for (const t of [...hidden, ...maps]) t.dispose();
    throw e;
  }
}
