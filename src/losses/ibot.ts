/**
 * iBOT's masked-patch loss (DINOv2's iBOTPatchLoss): for each masked token of the student's global
 * crops, −Σ_k t_k · log_softmax(s/τ_s)_k against the teacher's probabilities of the same token,
 * weighted by 1/(#masked tokens of its image), summed and divided by the number of global images
 * (images with no masked token count there too). The teacher side: softmax((t − c)/τ_t) with its
 * own EMA centre over the masked tokens, or Sinkhorn–Knopp over them.
 *
 * Tokens are rows [N, K] gathered at the masked positions (the head need only see those);
 * `maskedTokens` lists them and their weights from the per-image masks.
 */
import type { Runtime } from '../gpu/runtime.js';
import { ReefError } from '../gpu/errors.js';
import { centeredSoftmax, updateCenter } from '../ops/dino-teacher.js';
import { sinkhornKnopp } from '../ops/sinkhorn.js';
import { temperedCrossEntropy } from '../ops/tempered-cross-entropy.js';
import { tensor } from '../tensor/create.js';
import { zeros } from '../tensor/fill.js';
import { noGrad } from '../tensor/grad-mode.js';
import { keep, type Tensor } from '../tensor/tensor.js';

export interface MaskedTokens {
  /** Flat positions image·P + p of the masked tokens, in order (P = tokens per image). */
  positions: Int32Array;
  /** Image of each masked token. */
  image: Int32Array;
  /** Per token: 1 / (#masked in its image) / images — the loss's row weights. */
  weights: Float32Array;
  /** Global images (the loss's divisor), masked or not. */
  images: number;
}

/** Masked tokens of the global crops from their masks (1 = masked, one array per image, equal lengths). */
export function maskedTokens(masks: readonly Uint8Array[]): MaskedTokens {
  const images = masks.length;
  if (images === 0) throw new ReefError('maskedTokens: no masks given');
  const P = masks[0]!.length;
  const positions: number[] = [];
  const image: number[] = [];
  const weights: number[] = [];
  masks.forEach((m, i) => {
    if (m.length !== P) throw new ReefError(`maskedTokens: mask ${i} has ${m.length} tokens, mask 0 has ${P}`);
    let count = 0;
    for (let p = 0; p < P; p++) if (m[p]) count++;
    for (let p = 0; p < P; p++) {
      if (!m[p]) continue;
      positions.push(i * P + p);
      image.push(i);
      weights.push(1 / count / images);
    }
  });
  return { positions: Int32Array.from(positions), image: Int32Array.from(image), weights: Float32Array.from(weights), images };
}

export interface IbotLossOptions {
  outDim: number;
  /** τ_s (default 0.1). */
  studentTemp?: number;
  /** EMA momentum of the centre (default 0.9). */
  centerMomentum?: number;
}

export class IbotPatchLoss {
  readonly outDim: number;
  readonly studentTemp: number;
  readonly centerMomentum: number;
  /** f32 [K], zero at the start; training state (checkpoint it). */
  readonly center: Tensor;

  constructor(readonly rt: Runtime, opts: IbotLossOptions) {
    this.outDim = opts.outDim;
    this.studentTemp = opts.studentTemp ?? 0.1;
    this.centerMomentum = opts.centerMomentum ?? 0.9;
    this.center = keep(zeros(rt, [this.outDim], { name: 'ibot_center' }));
  }

  /** Teacher probabilities of the masked tokens' logits [N, K], centred (no gradient). */
  teacherSoftmax(teacherLogits: Tensor, teacherTemp: number): Tensor {
    return centeredSoftmax(teacherLogits, this.center, teacherTemp);
  }

  /** Sinkhorn–Knopp over the N masked tokens instead of centring. */
  teacherSinkhorn(teacherLogits: Tensor, teacherTemp: number, iterations = 3): Tensor {
    return sinkhornKnopp(teacherLogits, teacherTemp, iterations);
  }

  /** Row weights [N] for `forward` (upload of MaskedTokens.weights). */
  weightsTensor(tokens: MaskedTokens): Tensor {
    return tensor(this.rt, tokens.weights, [tokens.weights.length], { name: 'ibot_weights' });
  }

  /**
   * The loss (a scalar): student logits [N, K] at the masked tokens, teacher probabilities [N, K]
   * (a constant), row weights f32 [N] (weightsTensor). With N = 0 the loss is 0 (no gradient).
   */
  forward(student: Tensor, teacherProbs: Tensor, weights: Tensor): Tensor {
    if (student.ndim !== 2 || student.shape[1] !== this.outDim) throw new ReefError(`IbotPatchLoss: student ${student.describe()} must be [N, ${this.outDim}]`);
    if (student.shape[0] === 0) return zeros(this.rt, []);
    return temperedCrossEntropy(student, teacherProbs, { temperature: this.studentTemp, rowWeights: weights });
  }

  /** center ← the mean of these teacher logits (momentum 0): a start from the data instead of 0. */
  initCenter(teacherLogits: Tensor): void {
    noGrad(() => updateCenter(this.center, teacherLogits, 0));
  }

  /** c ← m·c + (1 − m)·mean over the masked tokens of the teacher's raw logits [N, K]. */
  updateCenter(teacherLogits: Tensor): void {
    noGrad(() => updateCenter(this.center, teacherLogits, this.centerMomentum));
  }

  dispose(): void {
    this.center.dispose();
  }
}
