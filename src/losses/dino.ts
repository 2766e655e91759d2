/**
 * DINO's self-distillation loss on [CLS] prototype scores (DINO / DINOv2):
 *   loss = 1/terms · Σ_{teacher global g} Σ_{student view v ≠ g} mean_b −Σ_k q_gbk · log_softmax(s_vb/τ_s)_k
 * with terms = G·V − G (G teacher globals, V student views, globals first: 2·(2+L) − 2).
 * Teacher targets: q = softmax((t − c)/τ_t) with an EMA centre c, or Sinkhorn–Knopp, optionally
 * over a queue of the last steps' teacher logits too (SwAV's remedy for small batches: balancing
 * 4 rows over K prototypes forces each row's entropy to at least ln(K/4)).
 */
import type { Runtime } from '../gpu/runtime.js';
import { ReefError } from '../gpu/errors.js';
import { centeredSoftmax, updateCenter } from '../ops/dino-teacher.js';
import { add } from '../ops/binary.js';
import { sinkhornKnopp } from '../ops/sinkhorn.js';
import { concat, slice } from '../ops/shape.js';
import { temperedCrossEntropy } from '../ops/tempered-cross-entropy.js';
import { zeros } from '../tensor/fill.js';
import { noGrad } from '../tensor/grad-mode.js';
import { keep, type Tensor } from '../tensor/tensor.js';

export interface DinoLossOptions {
  /** Prototypes K. */
  outDim: number;
  /** τ_s (default 0.1). */
  studentTemp?: number;
  /** EMA momentum of the centre (default 0.9). */
  centerMomentum?: number;
  /** Teacher global crops G (default 2). */
  globalCrops?: number;
  /** Rows of past teacher logits Sinkhorn–Knopp balances together with the batch's (default 0). */
  queueRows?: number;
}

export class DinoLoss {
  readonly outDim: number;
  readonly studentTemp: number;
  readonly centerMomentum: number;
  readonly globalCrops: number;
  /** f32 [K], zero at the start; part of the training state (checkpoint it). */
  readonly center: Tensor;
  /** f32 [Q, K]: past teacher logits, oldest first, the last `queueFilled` rows valid; training state. */
  queue: Tensor | null;
  queueFilled = 0;

  constructor(rt: Runtime, opts: DinoLossOptions) {
    this.outDim = opts.outDim;
    this.studentTemp = opts.studentTemp ?? 0.1;
    this.centerMomentum = opts.centerMomentum ?? 0.9;
    this.globalCrops = opts.globalCrops ?? 2;
    if (!(Number.isInteger(this.globalCrops) && this.globalCrops >= 1)) throw new ReefError(`DinoLoss: globalCrops must be a positive integer, got ${this.globalCrops}`);
    this.center = keep(zeros(rt, [this.outDim], { name: 'dino_center' }));
    const Q = opts.queueRows ?? 0;
    if (!(Number.isInteger(Q) && Q >= 0)) throw new ReefError(`DinoLoss: queueRows must be a whole number, got ${Q}`);
    this.queue = Q > 0 ? keep(zeros(rt, [Q, this.outDim], { name: 'dino_queue' })) : null;
  }

  /** Centred, sharpened teacher probabilities of the global crops' logits [G·B, K] (no gradient). */
  teacherSoftmax(teacherLogits: Tensor, teacherTemp: number): Tensor {
    return centeredSoftmax(teacherLogits, this.center, teacherTemp);
  }

  /** Sinkhorn–Knopp teacher targets instead of centring (the centre is then not used). */
  teacherSinkhorn(teacherLogits: Tensor, teacherTemp: number, iterations = 3): Tensor {
    if (!this.queue || this.queueFilled === 0) return sinkhornKnopp(teacherLogits, teacherTemp, iterations);
    return noGrad(() => {
      const [Q, K] = this.queue!.shape as [number, number];
      const n = teacherLogits.shape[0]!;
      const past = slice(this.queue!, [Q - this.queueFilled, 0], [Q, K]);
      const all = concat([past, teacherLogits], 0);
      const q = sinkhornKnopp(all, teacherTemp, iterations);
      const mine = slice(q, [this.queueFilled, 0], [this.queueFilled + n, K]);
      for (const t of [past, all, q]) t.dispose();
      return mine;
    });
  }

  /** Appends the step's teacher logits [n, K] to the queue (dropping the oldest); call after the loss. */
  pushQueue(teacherLogits: Tensor): void {
    const queue = this.queue;
    if (!queue) return;
    noGrad(() => {
      const [Q, K] = queue.shape as [number, number];
      const n = teacherLogits.shape[0]!;
      let next: Tensor;
      if (n >= Q) next = slice(teacherLogits, [n - Q, 0], [n, K]);
      else {
        const kept = slice(queue, [n, 0], [Q, K]);
        next = concat([kept, teacherLogits], 0);
        kept.dispose();
      }
      this.queue = keep(next);
      queue.dispose();
      this.queueFilled = Math.min(Q, this.queueFilled + n);
    });
  }

  /**
   * The loss (a scalar). `student`: logits of every view, view-major, globals first, in one tensor
   * [V·B, K] or in consecutive pieces (e.g. globals [G·B, K] and locals [L·B, K]).
   * `teacherProbs`: [G·B, K] from teacherSoftmax / teacherSinkhorn; a constant here.
   */
  forward(student: Tensor | readonly Tensor[], teacherProbs: Tensor): Tensor {
    const parts = Array.isArray(student) ? [...(student as readonly Tensor[])] : [student as Tensor];
    const G = this.globalCrops;
    if (teacherProbs.ndim !== 2 || teacherProbs.shape[1] !== this.outDim || teacherProbs.shape[0]! % G !== 0) {
      throw new ReefError(`DinoLoss: teacher ${teacherProbs.describe()} must be [${G}·B, ${this.outDim}]`);
    }
    const B = teacherProbs.shape[0]! / G;
    const views: number[] = [];
    for (const p of parts) {
      if (p.ndim !== 2 || p.shape[1] !== this.outDim || B === 0 || p.shape[0]! % B !== 0) {
        throw new ReefError(`DinoLoss: student piece ${p.describe()} must be [views·${B}, ${this.outDim}]`);
      }
      views.push(p.shape[0]! / B);
    }
    const V = views.reduce((a, b) => a + b, 0);
    if (V < G) throw new ReefError(`DinoLoss: ${V} student views, fewer than the ${G} global crops`);
    const terms = G * V - G;
    if (terms === 0) throw new ReefError('DinoLoss: no (teacher, other student view) pair');
    let first = 0;
    let total: Tensor | null = null;
    parts.forEach((p, i) => {
      const l = temperedCrossEntropy(p, teacherProbs, {
        temperature: this.studentTemp,
        weight: 1 / (terms * B),
        pairing: { batch: B, firstView: first, teachers: G },
      });
      first += views[i]!;
      if (!total) total = l;
      else {
        const s: Tensor = add(total, l);
        total.dispose();
        l.dispose();
        total = s;
      }
    });
    return total!;
  }

  /** center ← the mean of these teacher logits (momentum 0): a start from the data instead of 0. */
  initCenter(teacherLogits: Tensor): void {
    noGrad(() => updateCenter(this.center, teacherLogits, 0));
  }

  /** c ← m·c + (1 − m)·mean over rows of the teacher's raw logits [G·B, K]; call after the loss. */
  updateCenter(teacherLogits: Tensor): void {
    noGrad(() => updateCenter(this.center, teacherLogits, this.centerMomentum));
  }

  dispose(): void {
    this.center.dispose();
    this.queue?.dispose();
  }
}
