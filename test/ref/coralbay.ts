/**
 * float64 reference of the CoralBay encoder (eva's SwinUNETREncoder: MONAI SwinTransformer with
 * use_v2, plus the UNETR encoder blocks), channels-first:
 *
 *   hs = swinViT(x)                  (five LayerNorm-ed hidden states)
 *   enc0 = encoder1(x)   enc1 = encoder2(hs0)   enc2 = encoder3(hs1)   enc3 = encoder4(hs2)
 *   hs3 = hs3            dec4 = encoder10(hs4)
 *   embedding = concat(mean over space of enc0, enc1, enc2, enc3, dec4)   (24·fs; hs3 skipped)
 */
import { arr, type Arr } from './array';
import { swinViT, type SwinViTRefOptions } from './swin';
import { toChannelsFirst, unetResBlock, type Weights } from './unet';

export const ENCODER_PREFIXES = ['encoder1.layer.', 'encoder2.layer.', 'encoder3.layer.', 'encoder4.layer.', 'encoder10.layer.'] as const;

export interface CoralBayRefOptions extends Omit<SwinViTRefOptions, 'prefix' | 'normalize'> {
  depths?: number[];
  heads?: number[];
  /** Any input size (pretraining's local crops): no decoder joins the maps. */
  anySide?: boolean;
}

export interface CoralBayRef {
  /** Five SwinViT hidden states, channels-first. */
  hidden: Arr[];
  /** [enc0, enc1, enc2, enc3, hs3, dec4], channels-first. */
  maps: Arr[];
  /** [B, 24·fs]. */
  embedding: Arr;
}

/** Mean over D, H, W of a channels-first map: [B, C, D, H, W] → [B, C]. */
export function spatialMean(x: Arr): Arr {
  const [B, C] = x.shape as [number, number];
  const S = x.data.length / (B * C);
  const out = arr([B, C]);
  for (let r = 0; r < B * C; r++) {
    let s = 0;
    for (let i = 0; i < S; i++) s += x.data[r * S + i]!;
    out.data[r] = s / S;
  }
  return out;
}

/** Concatenation of [B, Ci] arrays on axis 1. */
export function concatRows(xs: Arr[]): Arr {
  const B = xs[0]!.shape[0]!;
  const total = xs.reduce((a, x) => a + x.shape[1]!, 0);
  const out = arr([B, total]);
  for (let b = 0; b < B; b++) {
    let off = 0;
    for (const x of xs) {
      const C = x.shape[1]!;
      for (let c = 0; c < C; c++) out.data[b * total + off + c] = x.data[b * C + c]!;
      off += C;
    }
  }
  return out;
}

/** The hidden states the encoder blocks read: [x, hs0, hs1, hs2, hs4] for encoder1, 2, 3, 4, 10. */
export const ENCODER_INPUTS = [-1, 0, 1, 2, 4] as const;

export function coralBayEncoder(x: Arr, W: Weights, opts: CoralBayRefOptions = {}): CoralBayRef {
  const sides = x.shape.slice(2);
  if (x.shape.length !== 5 || (!opts.anySide && sides.some((s) => s % 32 !== 0))) throw new Error(`CoralBay reference: sides [${sides}] must be multiples of 32`);
  const hidden = swinViT(x, W, opts.depths ?? [2, 2, 2, 2], opts.heads ?? [3, 6, 12, 24], { ...opts, prefix: 'swinViT', useV2: opts.useV2 ?? true, normalize: true }).map(toChannelsFirst);
  const enc = ENCODER_PREFIXES.map((p, k) => unetResBlock(ENCODER_INPUTS[k] === -1 ? x : hidden[ENCODER_INPUTS[k]!]!, W, p));
  const maps = [enc[0]!, enc[1]!, enc[2]!, enc[3]!, hidden[3]!, enc[4]!];
  const embedding = concatRows(enc.map(spatialMean));
  return { hidden, maps, embedding };
}
