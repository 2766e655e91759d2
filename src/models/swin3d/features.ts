/**
 * A volume through a SwinViT or CoralBay encoder, as `reef features` and the browser page run it:
 * the named feature maps MONAI's modules return, every one channels-first (1, C, D, H, W) — the
 * hidden states, and for a CoralBay encoder also enc0 … enc3, dec4 and the multiscale embedding
 * (1, 24·fs). Host-free: nothing here reads files or knows how the weights were obtained.
 */
import { ReefError } from '../../gpu/errors.js';
import { permute } from '../../ops/shape.js';
import { noGrad } from '../../tensor/grad-mode.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ModelConfig } from './config.js';
import { coralBayEncoderForward } from './coralbay-encoder.js';
import { swinViTForward, type WeightLookup } from './swin-vit.js';

export interface FeatureMap {
  name: string;
  tensor: Tensor;
}

export interface EncodeOptions {
  /** Named in errors (the checkpoint's file name, say). */
  source?: string;
  /** CoralBay only: skip the multiple-of-32 side check (its maps need no decoder). */
  anySide?: boolean;
}

/**
 * Runs the encoder on `input` (1, inChannels, D, H, W) under no-grad. The GPU work is queued, not
 * awaited; the caller reads the tensors back and disposes them. If building the graph fails, what
 * was made is disposed before the error is rethrown.
 */
export function encodeFeatures(input: Tensor, model: { config: ModelConfig; lookup: WeightLookup }, opts: EncodeOptions = {}): FeatureMap[] {
  const cfg = model.config;
  const src = opts.source ?? 'encoder';
  if (input.shape.length !== 5 || input.shape[0] !== 1) throw new ReefError(`${src}: the input must be (1, C, D, H, W), got [${input.shape.join(', ')}]`);
  if (input.shape[1] !== cfg.inChannels) throw new ReefError(`${src}: the model takes ${cfg.inChannels} input channels, the input has ${input.shape[1]}`);
  const out: FeatureMap[] = [];
  try {
    noGrad(() => {
      if (cfg.kind === 'coralbay-encoder') {
        const r = coralBayEncoderForward(input, model.lookup, opts.anySide ? { ...cfg, anySide: true } : cfg);
        r.hidden.forEach((h, i) => out.push({ name: `hidden_states.${i}`, tensor: h }));
        // maps[4] is hidden_states.3 itself, so it is not listed twice.
        (['enc0', 'enc1', 'enc2', 'enc3', 'dec4'] as const).forEach((name, i) => out.push({ name, tensor: r.maps[i === 4 ? 5 : i]! }));
        out.push({ name: 'embedding', tensor: r.embedding });
      } else {
        // The SwinViT returns channels-last maps; MONAI's are channels-first.
        const hs = swinViTForward(input, model.lookup, cfg);
        try {
          hs.forEach((h, i) => out.push({ name: `hidden_states.${i}`, tensor: permute(h, [0, 4, 1, 2, 3]) }));
        } finally {
          for (const h of hs) h.dispose();
        }
      }
    });
  } catch (e) {
    for (const { tensor } of out) tensor.dispose();
    throw e;
  }
  return out;
}

/**
 * How many input voxels one cell of a feature map spans along each axis: 2^(s+1) for hidden state
 * s, 1 for enc0 and so on. Read off the shapes: a side padded up to a multiple of the stride gives
 * ceil(n / stride) cells, so the stride is the power of two at or above n / cells.
 */
export function featureStride(inputSide: readonly number[], mapSide: readonly number[]): [number, number, number] {
  return [0, 1, 2].map((a) => {
    const n = inputSide[a]!;
    const m = mapSide[a]!;
    return m >= n ? 1 : 2 ** Math.ceil(Math.log2(n / m) - 1e-9);
  }) as [number, number, number];
}
