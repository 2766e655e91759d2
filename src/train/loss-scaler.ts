/**
 * Dynamic loss scaling for f16 training: the loss is multiplied by `scale` before backward so small
 * gradients survive f16, and the gradients are divided by it before the update. A step whose
 * gradients are not all finite is skipped and the scale halved; after `growthInterval` finite steps
 * in a row the scale doubles. Pure host state, serialisable to JSON for checkpoints.
 */
import { ReefError } from '../gpu/errors.js';

export interface LossScalerOptions {
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
  /** The scale never goes below this (so a run of bad steps cannot reach 0). */
  minScale?: number;
  /** Nor above this (f32's largest power of two). */
  maxScale?: number;
}

export interface LossScalerState {
  scale: number;
  /** Finite steps since the last change of scale. */
  goodSteps: number;
  /** Steps skipped for non-finite gradients, over the whole run. */
  skippedSteps: number;
}

export class DynamicLossScaler {
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  readonly minScale: number;
  readonly maxScale: number;
  private s: LossScalerState;

  constructor(opts: LossScalerOptions = {}) {
    this.growthFactor = opts.growthFactor ?? 2;
    this.backoffFactor = opts.backoffFactor ?? 0.5;
    this.growthInterval = opts.growthInterval ?? 2000;
    this.minScale = opts.minScale ?? 2 ** -24;
    this.maxScale = opts.maxScale ?? 2 ** 127;
    if (!(this.growthFactor > 1)) throw new ReefError(`loss scaler: growthFactor ${this.growthFactor} must be > 1`);
    if (!(this.backoffFactor > 0 && this.backoffFactor < 1)) throw new ReefError(`loss scaler: backoffFactor ${this.backoffFactor} must be in (0, 1)`);
    if (!Number.isInteger(this.growthInterval) || this.growthInterval < 1) throw new ReefError(`loss scaler: growthInterval ${this.growthInterval} must be a positive integer`);
    this.s = { scale: this.clamp(opts.initScale ?? 2 ** 16), goodSteps: 0, skippedSteps: 0 };
  }

  get scale(): number {
    return this.s.scale;
  }

  /** 1/scale: what the gradients are multiplied by (exact for powers of two). */
  get invScale(): number {
    return 1 / this.s.scale;
  }

  get skippedSteps(): number {
    return this.s.skippedSteps;
  }

  /**
   * Records one step's outcome and returns whether the optimizer step must be skipped. Call once
   * per step, after the gradient check, with the scale that was used for that step.
   */
  update(finite: boolean): boolean {
    if (!finite) {
      this.s = { scale: this.clamp(this.s.scale * this.backoffFactor), goodSteps: 0, skippedSteps: this.s.skippedSteps + 1 };
      return true;
    }
    const good = this.s.goodSteps + 1;
    if (good >= this.growthInterval) this.s = { ...this.s, scale: this.clamp(this.s.scale * this.growthFactor), goodSteps: 0 };
    else this.s = { ...this.s, goodSteps: good };
    return false;
  }

  state(): LossScalerState {
    return { ...this.s };
  }

  loadState(state: LossScalerState): void {
    const { scale, goodSteps, skippedSteps } = state;
    if (!(scale > 0 && Number.isFinite(scale))) throw new ReefError(`loss scaler state: scale ${scale} is not a positive finite number`);
    for (const [k, v] of [['goodSteps', goodSteps], ['skippedSteps', skippedSteps]] as const) {
      if (!Number.isInteger(v) || v < 0) throw new ReefError(`loss scaler state: ${k} ${v} is not a non-negative integer`);
    }
    this.s = { scale, goodSteps, skippedSteps };
  }

  private clamp(scale: number): number {
    return Math.min(this.maxScale, Math.max(this.minScale, scale));
  }
}
