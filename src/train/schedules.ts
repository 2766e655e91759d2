/**
 * Training schedules as pure functions of the global step (no state, so a resumed run only needs
 * the step). An epoch is `epochSteps` steps; every epoch-valued setting becomes steps through it.
 * Defaults follow DINO/DINOv2: LR warm-up then cosine, cosine weight decay and teacher momentum,
 * linear teacher-temperature warm-up, and a frozen last layer in the first epoch.
 */
import { ReefError } from '../gpu/errors.js';

function checkStep(step: number, what: string): void {
  if (!Number.isInteger(step) || step < 0) throw new ReefError(`${what}: step ${step} is not a non-negative integer`);
}

function checkSteps(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0) throw new ReefError(`${what} ${n} is not a non-negative integer`);
}

/** `from` at step 0, `to` at `steps` and after, half a cosine in between. */
export function cosineDecay(step: number, from: number, to: number, steps: number): number {
  checkStep(step, 'cosineDecay');
  checkSteps(steps, 'cosineDecay: steps');
  if (step >= steps) return to;
  // Weighted form: exactly `from` at step 0.
  const w = 0.5 * (1 + Math.cos((Math.PI * step) / steps));
  return from * w + to * (1 - w);
}

/** `from` at step 0, `to` at `steps` and after, a straight line in between. */
export function linearRamp(step: number, from: number, to: number, steps: number): number {
  checkStep(step, 'linearRamp');
  checkSteps(steps, 'linearRamp: steps');
  if (step >= steps) return to;
  return from + ((to - from) * step) / steps;
}

/**
 * Linear warm-up from `start` (step 0) to `peak` (step `warmupSteps`), then cosine from `peak` to
 * `final` at `totalSteps`, and `final` after it.
 */
export function warmupCosine(step: number, o: { peak: number; final: number; warmupSteps: number; totalSteps: number; start?: number }): number {
  checkSteps(o.warmupSteps, 'warmupCosine: warmupSteps');
  checkSteps(o.totalSteps, 'warmupCosine: totalSteps');
  if (o.warmupSteps > o.totalSteps) throw new ReefError(`warmupCosine: warm-up of ${o.warmupSteps} steps is longer than the run (${o.totalSteps})`);
  if (step < o.warmupSteps) return linearRamp(step, o.start ?? 0, o.peak, o.warmupSteps);
  return cosineDecay(step - o.warmupSteps, o.peak, o.final, o.totalSteps - o.warmupSteps);
}

/** The linear scaling rule: base LR for `refBatch` samples, scaled to the global batch. */
export function scaledLr(baseLr: number, batchSize: number, refBatch = 256): number {
  return (baseLr * batchSize) / refBatch;
}

export interface DinoScheduleConfig {
  epochs: number;
  /** Optimizer steps per epoch. */
  epochSteps: number;
  /** Global batch (all crops' images once), for the linear scaling rule. */
  batchSize: number;
  /** LR per 256 images (default 5e-4). */
  baseLr?: number;
  lrRefBatch?: number;
  minLr?: number;
  warmupEpochs?: number;
  weightDecay?: number;
  weightDecayEnd?: number;
  momentumTeacher?: number;
  momentumTeacherEnd?: number;
  warmupTeacherTemp?: number;
  teacherTemp?: number;
  warmupTeacherTempEpochs?: number;
  /** Epochs during which the last layer's LR is 0. */
  freezeLastLayerEpochs?: number;
}

export interface ScheduleValues {
  step: number;
  /** Whole epochs completed before this step. */
  epoch: number;
  lr: number;
  weightDecay: number;
  teacherMomentum: number;
  teacherTemp: number;
  /** LR multiplier of the last layer (0 while frozen, else 1). */
  lastLayerLrScale: number;
}

/** All DINO schedules of one run; `at(step)` is pure. */
export class DinoSchedules {
  readonly totalSteps: number;
  readonly peakLr: number;
  readonly cfg: Required<DinoScheduleConfig>;

  constructor(cfg: DinoScheduleConfig) {
    const c: Required<DinoScheduleConfig> = {
      baseLr: 5e-4,
      lrRefBatch: 256,
      minLr: 1e-6,
      warmupEpochs: 10,
      weightDecay: 0.04,
      weightDecayEnd: 0.4,
      momentumTeacher: 0.996,
      momentumTeacherEnd: 1,
      warmupTeacherTemp: 0.04,
      teacherTemp: 0.07,
      warmupTeacherTempEpochs: 30,
      freezeLastLayerEpochs: 1,
      ...cfg,
    };
    // A run may end inside an epoch (--steps need not be a multiple of --epoch-steps).
    if (!(c.epochs > 0 && Number.isFinite(c.epochs))) throw new ReefError(`epochs ${c.epochs} must be a positive number`);
    checkSteps(c.epochSteps, 'epochSteps');
    if (c.epochSteps === 0) throw new ReefError('epochSteps must be positive');
    this.cfg = c;
    this.totalSteps = Math.round(c.epochs * c.epochSteps);
    this.peakLr = scaledLr(c.baseLr, c.batchSize, c.lrRefBatch);
    if (this.warmupSteps > this.totalSteps) throw new ReefError(`LR warm-up (${c.warmupEpochs} epochs) is longer than the run (${c.epochs})`);
  }

  /** Epoch counts may be fractional; steps are rounded to whole steps. */
  private steps(epochs: number): number {
    return Math.round(epochs * this.cfg.epochSteps);
  }

  get warmupSteps(): number {
    return this.steps(this.cfg.warmupEpochs);
  }

  lr(step: number): number {
    return warmupCosine(step, { peak: this.peakLr, final: this.cfg.minLr, warmupSteps: this.warmupSteps, totalSteps: this.totalSteps });
  }

  weightDecay(step: number): number {
    return cosineDecay(step, this.cfg.weightDecay, this.cfg.weightDecayEnd, this.totalSteps);
  }

  /** m_i = end + ½(start − end)(1 + cos(π i / I)); with end = 1 this is 1 + ½(m₀ − 1)(1 + cos(π i / I)). */
  teacherMomentum(step: number): number {
    return cosineDecay(step, this.cfg.momentumTeacher, this.cfg.momentumTeacherEnd, this.totalSteps);
  }

  /** Per step (DINOv2), not per epoch (DINO v1). */
  teacherTemp(step: number): number {
    return linearRamp(step, this.cfg.warmupTeacherTemp, this.cfg.teacherTemp, this.steps(this.cfg.warmupTeacherTempEpochs));
  }

  lastLayerLrScale(step: number): number {
    checkStep(step, 'lastLayerLrScale');
    return step < this.steps(this.cfg.freezeLastLayerEpochs) ? 0 : 1;
  }

  at(step: number): ScheduleValues {
    checkStep(step, 'DinoSchedules.at');
    return {
      step,
      epoch: Math.floor(step / this.cfg.epochSteps),
      lr: this.lr(step),
      weightDecay: this.weightDecay(step),
      teacherMomentum: this.teacherMomentum(step),
      teacherTemp: this.teacherTemp(step),
      lastLayerLrScale: this.lastLayerLrScale(step),
    };
  }
}
