/**
 * AdamW on the GPU. Parameters are f32 master weights; moments live on the GPU beside them.
 * Biases and other 1-D parameters get no weight decay (the usual parameter-group split).
 */
import code from '../../shaders/adamw.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { grid1d } from '../ops/geometry.js';
import { zeros } from '../tensor/fill.js';
import { keep, type Tensor } from '../tensor/tensor.js';

export const ADAMW: ShaderFile = { name: 'adamw', code };

export interface AdamWOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters are decayed (default: those with 2 or more dimensions). */
  decays?: (p: Tensor) => boolean;
}

export interface AdamWStepOptions {
  lr?: number;
  weightDecay?: number;
  /** Multiplies every gradient before the update (clipping, loss-scale removal). */
  gradScale?: number;
}

export class AdamW {
  step = 0;
  readonly lr: number;
  readonly weightDecay: number;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly moments: { m: Tensor; v: Tensor }[];
  private readonly decayed: boolean[];
  /** Updates applied to each parameter (its bias-correction step). */
  readonly paramSteps: number[];

  constructor(
    readonly params: readonly Tensor[],
    opts: AdamWOptions = {},
  ) {
    this.lr = opts.lr ?? 1e-3;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    const decays = opts.decays ?? ((p: Tensor) => p.ndim >= 2);
    for (const p of params) if (p.dtype !== 'f32') throw new ReefError(`AdamW: parameter ${p.describe()} must be f32 (master weights)`);
    this.moments = params.map((p) => ({ m: keep(zeros(p.rt, p.shape)), v: keep(zeros(p.rt, p.shape)) }));
    this.decayed = params.map(decays);
    this.paramSteps = params.map(() => 0);
  }

  /** Applies one update from each parameter's `.grad` (parameters without one are skipped). */
  update(opts: AdamWStepOptions = {}): void {
    this.step++;
    const lr = opts.lr ?? this.lr;
    const wd = opts.weightDecay ?? this.weightDecay;
    this.params.forEach((p, i) => {
      if (!p.grad || p.size === 0) return;
      // Bias correction counts this parameter's own updates, as PyTorch's per-parameter state does:
      // one that first receives a gradient late (a frozen last layer) starts from step 1.
      const t = ++this.paramSteps[i]!;
      const bc1 = 1 - this.beta1 ** t;
      const bc2 = 1 - this.beta2 ** t;
      const { m, v } = this.moments[i]!;
      p.rt.dispatch({
        kernel: { shader: ADAMW, entry: 'main' },
        buffers: { param: p.buffer, grad: p.grad.buffer, m: m.buffer, v: v.buffer },
        params: {
          n: p.size,
          lr,
          beta1: this.beta1,
          beta2: this.beta2,
          eps: this.eps,
          weightDecay: this.decayed[i] ? wd : 0,
          biasCorrection1: bc1,
          biasCorrection2: bc2,
          gradScale: opts.gradScale ?? 1,
        },
        workgroups: grid1d(p.size, 256, p.rt.caps.maxWorkgroupsPerDimension),
        work: { flops: 14 * p.size, bytes: 28 * p.size },
      });
    });
  }

  /** The moment tensors, in parameter order (for checkpoints). */
  state(): { m: Tensor; v: Tensor }[] {
    return this.moments;
  }

  dispose(): void {
    for (const { m, v } of this.moments) {
      m.dispose();
      v.dispose();
    }
  }
}
