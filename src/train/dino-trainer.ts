/**
 * One CoralBay-style self-distillation step on the GPU: student and EMA teacher CoralBay encoders,
 * a DINO head on the 24·fs multiscale embedding, an iBOT head on the stage-3 tokens (hidden_states[3],
 * the crop / 16), KoLeo on the student's global embeddings, AdamW with clipping, and the teacher's
 * EMA and centres. Host-neutral: the caller brings crops and masks (train/pretrain-batch.ts) and
 * keeps the run directory.
 *
 *   teacher(globals) ──► DINO head ─► centred softmax ─┐
 *                    └─► iBOT head (masked tokens) ─┐  │
 *   student(masked globals, locals) ─► heads ──► iBOT ┴► DINO + KoLeo [+ SIGReg] ─► backward ─► clip ─► AdamW ─► EMA
 *
 * With f16 activations the encoders run on f16 copies of the f32 master weights and f16 crops; the
 * heads, losses, optimizer and EMA stay f32. The loss is multiplied by a dynamic scale before
 * backward (train/loss-scaler.ts) and the gradients divided by it in the clip.
 */
import type { Runtime } from '../gpu/runtime.js';
import { ReefError } from '../gpu/errors.js';
import { DinoLoss } from '../losses/dino.js';
import { IbotPatchLoss, maskedTokens } from '../losses/ibot.js';
import { koleoLoss } from '../losses/koleo.js';
import { sigregLoss, sigregSlices } from '../losses/sigreg.js';
import { Rng } from '../data/rng.js';
import { coralBayEncoderForward, embeddingWidth, type EmbeddingMap } from '../models/swin3d/coralbay-encoder.js';
import { paramShapes, stageWidth, type ModelConfig } from '../models/swin3d/config.js';
import { initWeights } from '../models/swin3d/init.js';
import { weightLookup } from '../models/swin3d/state-dict.js';
import { DinoHead } from '../nn/dino-head.js';
import { add } from '../ops/binary.js';
import { matmul } from '../ops/matmul.js';
import { cast } from '../ops/cast.js';
import { scale } from '../ops/pointwise.js';
import { concat, permute, reshape } from '../ops/shape.js';
import { backward, releaseGraph, zeroGrad } from '../tensor/backward.js';
import { tensor } from '../tensor/create.js';
import { zeros } from '../tensor/fill.js';
import { noGrad } from '../tensor/grad-mode.js';
import { keep, tidy, type Tensor } from '../tensor/tensor.js';
import { AdamW, dinoParamGroups } from './adamw.js';
import { emaUpdate } from './ema.js';
import { GradClipper, type ClipMode } from './grad-clip.js';
import { DynamicLossScaler, type LossScalerOptions, type LossScalerState } from './loss-scaler.js';
import { HalfWeights } from './mixed-precision.js';
import { poolMask, type Grid3 } from './masking.js';
import { DinoSchedules, type DinoScheduleConfig, type ScheduleValues } from './schedules.js';

export interface DinoTrainerOptions {
  model: ModelConfig;
  /** Images per step (each gives `globals` + `locals` crops). */
  batch: number;
  globals: number;
  locals: number;
  globalSide: number;
  localSide: number;
  prototypes: number;
  headHidden: number;
  bottleneck: number;
  studentTemp: number;
  centerMomentum: number;
  centering: 'centre' | 'sinkhorn';
  /** With Sinkhorn–Knopp: rows of past teacher logits balanced with each batch's (0: none). */
  sinkhornQueue?: number;
  /**
   * The centres' start: 'zero' (DINO) or 'batch', the first step's teacher mean. From 0 the first
   * steps' teacher targets keep the logit part all crops share, sharpened by τ_t, which can pull a
   * small run into one prototype before the centre has caught up.
   */
  centerInit?: 'zero' | 'batch';
  ibotWeight: number;
  koleoWeight: number;
  clip: number;
  clipMode: ClipMode;
  schedules: DinoScheduleConfig;
  seed: number;
  /** Micro-batches per optimizer step (gradient accumulation); default 1. */
  accumulate?: number;
  /**
   * SIGReg (LeJEPA's Epps–Pulley on random unit slices) on the student's global embeddings, with
   * this weight (default 0: off) and this many slices (default 256), drawn anew each step from
   * (seed, step, micro-batch). LeJEPA applies it per view; with a handful of images per step the
   * views are pooled here (N = 2·B rows), or the statistic would rest on B samples.
   */
  sigregWeight?: number;
  sigregSlices?: number;
  /** The maps whose means make the embedding (default the multiscale set enc0, enc1, enc2, enc3, dec4). */
  embeddingMaps?: readonly EmbeddingMap[];
  /** Stochastic depth of the student's Swin blocks (MONAI's ramp to this rate; default 0). */
  dropPath?: number;
  /** Recompute the student's stages and UNETR blocks in backward instead of keeping their activations. */
  recompute?: boolean;
  /**
   * The encoders' activations: 'f16' (needs shader-f16; f32 master weights, dynamic loss scaling),
   * 'f32', or 'auto' (default): f16 where the adapter has shader-f16 and is not a CPU adapter, on
   * which f16 arithmetic is emulated and slower (kernels-bench/RESULTS.md).
   */
  precision?: 'auto' | 'f16' | 'f32';
  /** The dynamic loss scaler's settings (f16 only). */
  lossScaler?: LossScalerOptions;
}

/** One step's crops: view-major (row v·B + b), values in [0, 1]; one mask per global row. */
export interface DinoBatch {
  globals: Float32Array;
  locals: Float32Array;
  /** On the patch-embed grid (globalSide / 2 per axis), 1 = masked. */
  masks: Uint8Array[];
}

export interface DinoStepResult {
  step: number;
  /** False when a loss or gradient was not finite: the step was skipped. */
  applied: boolean;
  loss: number;
  dino: number;
  ibot: number;
  koleo: number;
  /** 0 when SIGReg is off. */
  sigreg: number;
  gradNorm: number;
  lr: number;
  weightDecay: number;
  teacherTemp: number;
  teacherMomentum: number;
  /** Mean entropy of the teacher's DINO distributions, and how many prototypes are someone's argmax. */
  teacherEntropy: number;
  teacherArgmaxUnique: number;
  /** The teacher's argmax prototype per global crop (collapse shows as one value for all). */
  teacherArgmax: number[];
  maskedTokens: number;
  /** The loss scale this step used (1 in f32). */
  lossScale: number;
  nonFinite?: string[];
}

interface MicroResult {
  /** loss, dino, ibot, koleo, sigreg scalars. */
  terms: Tensor[];
  dinoLogits: Tensor;
  ibotLogits: Tensor | null;
  q: Tensor;
  maskedTokens: number;
  /** Everything to dispose once the step is done (disposing twice is harmless). */
  owned: Tensor[];
}

interface Net {
  encoder: Map<string, Tensor>;
  dinoHead: DinoHead;
  ibotHead: DinoHead;
}

export class DinoTrainer {
  readonly schedules: DinoSchedules;
  readonly student: Net;
  readonly teacher: Net;
  readonly maskToken: Tensor;
  readonly dinoLoss: DinoLoss;
  readonly ibotLoss: IbotPatchLoss;
  readonly optimizer: AdamW;
  private readonly clipper: GradClipper;
  private readonly named: [string, Tensor][];
  readonly patchGrid: Grid3;
  /** The encoders' activation type, as resolved from `precision`. */
  readonly activations: 'f16' | 'f32';
  /** Null in f32. */
  readonly lossScaler: DynamicLossScaler | null;

  constructor(
    readonly rt: Runtime,
    readonly o: DinoTrainerOptions,
  ) {
    const fs = o.model.featureSize;
    if (o.model.kind !== 'coralbay-encoder') throw new ReefError(`pretraining needs a CoralBay encoder preset, got ${o.model.kind}`);
    if (o.globals !== 2) throw new ReefError(`DINO pairs two global crops; got ${o.globals}`);
    if (o.batch < 2 && o.koleoWeight > 0) throw new ReefError(`KoLeo needs a neighbour: batch ${o.batch} must be at least 2 (or set the KoLeo weight to 0)`);
    if (o.globalSide % 32 !== 0) throw new ReefError(`global crops must be multiples of 32 (the CoralBay encoder's maps), got ${o.globalSide}`);
    this.schedules = new DinoSchedules(o.schedules);
    const precision = o.precision ?? 'auto';
    if (precision === 'f16' && !rt.caps.f16) throw new ReefError(`f16 activations need shader-f16, which this adapter (${rt.describe()}) lacks: use precision f32`);
    if (!['auto', 'f16', 'f32'].includes(precision)) throw new ReefError(`precision '${String(precision)}': expected auto, f16 or f32`);
    this.activations = precision === 'auto' ? (rt.caps.f16 && !rt.caps.isCpu ? 'f16' : 'f32') : precision;
    this.lossScaler = this.activations === 'f16' ? new DynamicLossScaler(o.lossScaler) : null;
    const side = o.globalSide / (o.model.patch ?? 2);
    this.patchGrid = [side, side, side];
    const build = (requiresGrad: boolean): Net => {
      const head = (inDim: number, seed: number) => new DinoHead(rt, { inDim, outDim: o.prototypes, hiddenDim: o.headHidden, bottleneckDim: o.bottleneck, seed });
      const net: Net = {
        encoder: initWeights(rt, paramShapes(o.model), o.seed, requiresGrad),
        dinoHead: head(embeddingWidth(fs, o.embeddingMaps), o.seed + 101),
        ibotHead: head(stageWidth(o.model, 3), o.seed + 202),
      };
      if (!requiresGrad) for (const [, t] of headParams(net)) t.requiresGrad = false;
      return net;
    };
    // The teacher starts as an exact copy of the student (same seeds), then follows it by EMA.
    this.student = build(true);
    this.teacher = build(false);
    this.maskToken = keep(zeros(rt, [fs], { requiresGrad: true, name: 'mask_token' }));
    this.dinoLoss = new DinoLoss(rt, { outDim: o.prototypes, studentTemp: o.studentTemp, centerMomentum: o.centerMomentum, globalCrops: o.globals, queueRows: o.centering === 'sinkhorn' ? (o.sinkhornQueue ?? 0) : 0 });
    this.ibotLoss = new IbotPatchLoss(rt, { outDim: o.prototypes, studentTemp: o.studentTemp, centerMomentum: o.centerMomentum });
    this.named = [...this.student.encoder.entries(), ...headParams(this.student), ['mask_token', this.maskToken]];
    this.optimizer = new AdamW(dinoParamGroups(this.named), { decays: 'ndim>1-not-bias' });
    this.clipper = new GradClipper(rt, { maxNorm: o.clip, mode: o.clipMode });
  }

  /** Student parameters by name (encoder in MONAI names, heads under dino_head./ibot_head.). */
  get parameters(): readonly [string, Tensor][] {
    return this.named;
  }

  /** Every tensor of the training state, by name: student, teacher, optimizer moments, centres. */
  stateTensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, t] of this.named) out.set(`student.${n}`, t);
    for (const [n, t] of [...this.teacher.encoder.entries(), ...headParams(this.teacher)]) out.set(`teacher.${n}`, t);
    for (const [n, t] of Object.entries(this.optimizer.stateTensors())) out.set(`optimizer.${n}`, t);
    out.set('dino_center', this.dinoLoss.center);
    if (this.dinoLoss.queue) out.set('dino_queue', this.dinoLoss.queue);
    out.set('ibot_center', this.ibotLoss.center);
    return out;
  }

  /** The host side of the training state (JSON): the optimizer's counters, the queue's fill. */
  stateMeta(): { optimizer: ReturnType<AdamW['stateMeta']>; dinoQueueFilled?: number; lossScaler?: LossScalerState } {
    return {
      optimizer: this.optimizer.stateMeta(),
      ...(this.dinoLoss.queue ? { dinoQueueFilled: this.dinoLoss.queueFilled } : {}),
      ...(this.lossScaler ? { lossScaler: this.lossScaler.state() } : {}),
    };
  }

  /**
   * Restores what stateTensors() and stateMeta() saved: every tensor by name, as f32 host values.
   * Names or sizes that do not match fail before anything is written.
   */
  loadState(meta: ReturnType<DinoTrainer['stateMeta']>, values: (name: string) => Float32Array | undefined): void {
    const targets = this.stateTensors();
    const writes: [Tensor, Float32Array][] = [];
    const moments: Record<string, Float32Array> = {};
    for (const [name, t] of targets) {
      const v = values(name);
      if (!v) throw new ReefError(`checkpoint: tensor '${name}' is missing`);
      if (v.length !== t.size) throw new ReefError(`checkpoint: '${name}' has ${v.length} values, ${t.describe()} needs ${t.size}`);
      if (name.startsWith('optimizer.')) moments[name.slice('optimizer.'.length)] = v;
      else writes.push([t, v]);
    }
    if (this.lossScaler && !meta.lossScaler) throw new ReefError('checkpoint: no loss-scaler state, but this run trains with f16 activations (was it saved by an f32 run?)');
    this.optimizer.loadState(meta.optimizer, moments);
    if (this.lossScaler && meta.lossScaler) this.lossScaler.loadState(meta.lossScaler);
    this.dinoLoss.queueFilled = meta.dinoQueueFilled ?? 0;
    for (const [t, v] of writes) this.rt.write(t.buffer, v);
  }

  /**
   * One training step; `step` indexes the schedules (0-based). With `accumulate` > 1 it takes that
   * many micro-batches: each runs forward and backward in turn (gradients add up, each loss scaled
   * by 1/N), then one clip + AdamW update, one EMA and one centre update over all the teacher rows.
   * That is the step of the whole batch, except that KoLeo's neighbours and Sinkhorn's balancing
   * stay within a micro-batch.
   */
  async step(step: number, batches: DinoBatch | readonly DinoBatch[]): Promise<DinoStepResult> {
    const list: readonly DinoBatch[] = Array.isArray(batches) ? batches : [batches as DinoBatch];
    const N = this.o.accumulate ?? 1;
    if (list.length !== N) throw new ReefError(`DinoTrainer.step: ${list.length} micro-batches given, the trainer accumulates ${N}`);
    const s = this.schedules.at(step);
    const micro: MicroResult[] = [];
    try {
      const lossScale = this.lossScaler?.scale ?? 1;
      for (const [m, b] of list.entries()) micro.push(await this.forwardBackward(b, s, lossScale / N, [step, m]));
      const control = this.clipper.record(this.optimizer.params, { invScale: 1 / lossScale });
      this.optimizer.update({ lr: s.lr, weightDecay: s.weightDecay, lrScales: { last_layer: s.lastLayerLrScale }, control });
      const stats = await this.clipper.read();
      const values = await Promise.all(micro.map((m) => Promise.all(m.terms.map((t) => t.read()))));
      const mean = (i: number) => values.reduce((a, v) => a + v[i]![0]!, 0) / N;
      const [lossV, dinoV, ibotV, koleoV, sigregV] = [0, 1, 2, 3, 4].map(mean) as [number, number, number, number, number];
      const applied = stats.finite && Number.isFinite(lossV);
      this.lossScaler?.update(applied);
      if (applied) {
        noGrad(() => {
          emaUpdate([...this.teacher.encoder.values(), ...headParams(this.teacher).map((p) => p[1])], [...this.student.encoder.values(), ...headParams(this.student).map((p) => p[1])], s.teacherMomentum);
          withRows(micro.map((m) => m.dinoLogits), (t) => {
            this.dinoLoss.updateCenter(t);
            this.dinoLoss.pushQueue(t);
          });
          withRows(micro.flatMap((m) => (m.ibotLogits ? [m.ibotLogits] : [])), (t) => this.ibotLoss.updateCenter(t));
        });
      } else {
        this.optimizer.undoStep();
      }
      zeroGrad(this.named.map((p) => p[1]));
      const q = await Promise.all(micro.map((m) => m.q.read()));
      const all = new Float32Array(q.reduce((n, v) => n + v.length, 0));
      q.reduce((at, v) => (all.set(v, at), at + v.length), 0);
      const { entropy, unique, argmax } = distributionStats(all, this.o.prototypes);
      return {
        step,
        applied,
        loss: lossV,
        dino: dinoV,
        ibot: ibotV,
        koleo: koleoV,
        sigreg: sigregV,
        gradNorm: stats.norm,
        lr: s.lr,
        weightDecay: s.weightDecay,
        teacherTemp: s.teacherTemp,
        teacherMomentum: s.teacherMomentum,
        teacherEntropy: entropy,
        teacherArgmaxUnique: unique,
        teacherArgmax: argmax,
        maskedTokens: micro.reduce((n, m) => n + m.maskedTokens, 0),
        lossScale,
        ...(applied ? {} : { nonFinite: Number.isFinite(lossV) ? stats.nonFiniteTensors.map((i) => this.nameOf(this.optimizer.params[i]!)) : ['loss'] }),
      };
    } finally {
      for (const m of micro) for (const t of m.owned) t.dispose();
    }
  }

  /** Forward and backward of one micro-batch; its loss is scaled by `lossScale` before backward. */
  /** `keys`: (step, micro-batch), which key the random draws of SIGReg's slices and drop-path. */
  private async forwardBackward(batch: DinoBatch, s: ScheduleValues, lossScale: number, keys: [number, number]): Promise<MicroResult> {
    const rt = this.rt;
    const o = this.o;
    const B = o.batch;
    const G = o.globals * B;
    const L = o.locals * B;
    if (batch.globals.length !== G * o.globalSide ** 3 || batch.locals.length !== L * o.localSide ** 3 || batch.masks.length !== G) {
      throw new ReefError(`DinoTrainer.step: the batch does not hold ${G} global crops of ${o.globalSide}³, ${L} local crops of ${o.localSide}³ and ${G} masks`);
    }
    const half = this.activations === 'f16';
    const dtype = this.activations;
    const globals = tensor(rt, batch.globals, [G, 1, o.globalSide, o.globalSide, o.globalSide], { name: 'globals', dtype });
    const locals = L > 0 ? tensor(rt, batch.locals, [L, 1, o.localSide, o.localSide, o.localSide], { name: 'locals', dtype }) : null;
    const maskValues = new Float32Array(G * this.patchGrid[0] * this.patchGrid[1] * this.patchGrid[2]);
    batch.masks.forEach((m, i) => maskValues.set(m, i * m.length));
    const patchMask = tensor(rt, maskValues, [G, ...this.patchGrid, 1], { name: 'ibot_mask', dtype });
    // The loss reads stage-3 tokens: the mask max-pooled by 8 (three merges).
    const pooled = batch.masks.map((m) => poolMask(m, this.patchGrid, 8));
    const tokens = maskedTokens(pooled.map((p) => p.mask));
    const perImage = pooled[0]!.mask.length;
    const select = tokens.positions.length > 0 ? selectionMatrix(rt, tokens.positions, G * perImage) : null;
    const weights = this.ibotLoss.weightsTensor(tokens);
    const sigregWeight = o.sigregWeight ?? 0;
    const sliceRng = Rng.fromKeys(o.seed, ...keys);
    const slices = sigregWeight > 0 ? sigregSlices(rt, embeddingWidth(o.model.featureSize, o.embeddingMaps), o.sigregSlices ?? 256, () => sliceRng.float()) : null;
    const dropRng = Rng.fromKeys(o.seed, ...keys, 1);
    const dropPath = (o.dropPath ?? 0) > 0 ? { rate: o.dropPath!, uniform: () => dropRng.float() } : undefined;
    const owned: Tensor[] = [globals, patchMask, weights, ...(locals ? [locals] : []), ...(select ? [select] : []), ...(slices ? [slices] : [])];
    const cfg = { ...o.model, ...(o.embeddingMaps ? { embeddingMaps: o.embeddingMaps } : {}) };
    // f16 copies of the master weights, made on first use and kept until after backward.
    const teacherW = weightLookup(this.teacher.encoder, 'teacher');
    const studentW = weightLookup(this.student.encoder, 'student');
    const teacherCopies = half ? new HalfWeights(teacherW) : null;
    const studentCopies = half ? new HalfWeights(studentW) : null;
    const toF32 = (t: Tensor) => cast(t, 'f32');
    try {
      // Teacher: globals only, no graph.
      const teacherOut = noGrad(() =>
        tidy(() => {
          const out = coralBayEncoderForward(globals, teacherCopies?.lookup ?? teacherW, cfg);
          const dinoLogits = this.teacher.dinoHead.forward(toF32(out.embedding));
          const ibotLogits = select ? this.teacher.ibotHead.forward(matmul(select, toF32(stageTokens(out.maps[4]!)))) : null;
          if (o.centerInit === 'batch' && keys[0] === 0 && keys[1] === 0) {
            this.dinoLoss.initCenter(dinoLogits);
            if (ibotLogits) this.ibotLoss.initCenter(ibotLogits);
          }
          const q = o.centering === 'sinkhorn' ? this.dinoLoss.teacherSinkhorn(dinoLogits, s.teacherTemp) : this.dinoLoss.teacherSoftmax(dinoLogits, s.teacherTemp);
          const qi = ibotLogits ? (o.centering === 'sinkhorn' ? this.ibotLoss.teacherSinkhorn(ibotLogits, s.teacherTemp) : this.ibotLoss.teacherSoftmax(ibotLogits, s.teacherTemp)) : null;
          for (const t of [...out.hidden, ...out.maps]) t.dispose();
          out.embedding.dispose();
          return { dinoLogits, ibotLogits, q, qi };
        }),
      );
      teacherCopies?.dispose();
      owned.push(...[teacherOut.dinoLogits, teacherOut.q, teacherOut.ibotLogits, teacherOut.qi].filter((t): t is Tensor => t !== null));

      // Student: masked globals and the locals, one graph.
      const terms = tidy(() => {
        const W = studentCopies?.lookup ?? studentW;
        const recompute = o.recompute ?? false;
        const g = coralBayEncoderForward(globals, W, { ...cfg, dropPath, recompute, mask: { patches: patchMask, token: cast(this.maskToken, dtype) } });
        const l = locals ? coralBayEncoderForward(locals, W, { ...cfg, dropPath, recompute, anySide: true }) : null;
        const gEmbedding = toF32(g.embedding);
        const views = [this.student.dinoHead.forward(gEmbedding), ...(l ? [this.student.dinoHead.forward(toF32(l.embedding))] : [])];
        const dino = this.dinoLoss.forward(views, teacherOut.q);
        const ibot = select && teacherOut.qi ? this.ibotLoss.forward(this.student.ibotHead.forward(matmul(select, toF32(stageTokens(g.maps[4]!)))), teacherOut.qi, weights) : zeros(rt, []);
        const koleo = o.koleoWeight > 0 ? koleoLoss(gEmbedding, { group: B }) : zeros(rt, []);
        const sigreg = slices ? sigregLoss(gEmbedding, slices) : zeros(rt, []);
        let loss = add(add(dino, scale(ibot, o.ibotWeight)), scale(koleo, o.koleoWeight));
        if (slices) loss = add(loss, scale(sigreg, sigregWeight));
        // Outputs the loss does not read (the locals' hs3, say) hold tape nodes backward never
        // reaches: kept here so their graphs can be freed after it.
        const outputs = [g, ...(l ? [l] : [])].flatMap((r) => [...r.hidden, ...r.maps, r.embedding]);
        return [loss, dino, ibot, koleo, sigreg, ...new Set(outputs)];
      });
      owned.push(...terms);
      const [loss] = terms as [Tensor];
      if (lossScale === 1) backward(loss);
      else {
        const scaled = scale(loss, lossScale);
        owned.push(scaled);
        backward(scaled);
      }
      for (const t of terms) releaseGraph(t);
      studentCopies?.dispose();
      // Drop what the centre and the statistics do not need before the next micro-batch.
      for (const t of [...terms.slice(5), globals, patchMask, weights, ...(locals ? [locals] : []), ...(select ? [select] : []), ...(slices ? [slices] : []), ...(teacherOut.qi ? [teacherOut.qi] : [])]) t.dispose();
      return { terms: terms.slice(0, 5), dinoLogits: teacherOut.dinoLogits, ibotLogits: teacherOut.ibotLogits, q: teacherOut.q, maskedTokens: tokens.positions.length, owned };
    } catch (e) {
      for (const t of owned) t.dispose();
      teacherCopies?.dispose();
      studentCopies?.dispose();
      throw e;
    }
  }

  private nameOf(t: Tensor): string {
    return this.named.find((p) => p[1] === t)?.[0] ?? t.name ?? '?';
  }

  dispose(): void {
    for (const net of [this.student, this.teacher]) {
      for (const t of net.encoder.values()) t.dispose();
      for (const [, t] of headParams(net)) t.dispose();
    }
    this.maskToken.dispose();
    this.optimizer.dispose();
    this.clipper.dispose();
    this.dinoLoss.dispose();
    this.ibotLoss.dispose();
    for (const p of this.named) {
      p[1].grad?.dispose();
      p[1].grad = null;
    }
  }
}

function headParams(net: Net): [string, Tensor][] {
  return [
    ...net.dinoHead.namedParameters().map(([n, t]): [string, Tensor] => [`dino_head.${n}`, t]),
    ...net.ibotHead.namedParameters().map(([n, t]): [string, Tensor] => [`ibot_head.${n}`, t]),
  ];
}

/** Calls `fn` with the rows of several [n_i, K] tensors as one; nothing when there are none. */
function withRows(parts: Tensor[], fn: (t: Tensor) => void): void {
  if (parts.length === 0) return;
  if (parts.length === 1) return fn(parts[0]!);
  const all = concat(parts, 0);
  try {
    fn(all);
  } finally {
    all.dispose();
  }
}

/** Channels-first stage map [B, C, d, h, w] → token rows [B·d·h·w, C]. */
function stageTokens(map: Tensor): Tensor {
  const [B, C, d, h, w] = map.shape as [number, number, number, number, number];
  return reshape(permute(map, [0, 2, 3, 4, 1]), [B * d * h * w, C]);
}

/** One-hot rows picking `positions` out of `total` rows: a gather whose backward is the matmul's. */
function selectionMatrix(rt: Runtime, positions: Int32Array, total: number): Tensor {
  const m = new Float32Array(positions.length * total);
  positions.forEach((p, i) => {
    m[i * total + p] = 1;
  });
  return tensor(rt, m, [positions.length, total], { name: 'ibot_select' });
}

/** Mean entropy (nats) of probability rows, and the number of distinct argmax prototypes. */
export function distributionStats(q: Float32Array, K: number): { entropy: number; unique: number; argmax: number[] } {
  const rows = q.length / K;
  let entropy = 0;
  const seen = new Set<number>();
  const argmax: number[] = [];
  for (let r = 0; r < rows; r++) {
    let h = 0;
    let best = 0;
    for (let k = 0; k < K; k++) {
      const p = q[r * K + k]!;
      if (p > 0) h -= p * Math.log(p);
      if (p > q[r * K + best]!) best = k;
    }
    entropy += h;
    seen.add(best);
    argmax.push(best);
  }
  return { entropy: entropy / rows, unique: seen.size, argmax };
}
