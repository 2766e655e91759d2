/**
 * Pretraining recipes: the CoralBay encoder preset plus every DINO/iBOT/KoLeo value, each one a
 * `reef pretrain` flag. CoralBay's own values are not public; where the spec says NOT FOUND these
 * are DINO/DINOv2's.
 *
 * `tiny` is the demo: fs 12, 32³ globals, 16³ locals, a 256-wide head with 4096 prototypes, 50-step
 * epochs. Its other values come from runs on the one sample head CT (kernels-bench/RESULTS.md):
 *  - each sample's crops come from one region of the body (5–15 % of it) with one HU window: with
 *    crops of the whole scan and a window per crop, two views of a sample share no more than two
 *    samples do, and the teacher only drifted to uniform; no flips (a flipped view of a head is
 *    told apart by its left–right asymmetry alone);
 *  - the embedding is the mean of the UNETR maps enc0–enc3: the default multiscale set's dec4 is one
 *    voxel at 32³ crops, whose instance norms output 0;
 *  - Sinkhorn–Knopp over the batch's teacher rows and a queue of the last 256 (SwAV's remedy for a
 *    batch of 2; with centring the teacher learnt the sample's HU window and drifted to uniform);
 *  - teacher temperature 0.008 throughout (0.03 and 0.04 drifted to uniform within 30 steps with
 *    centring; 0.012 reached 0.69 ln K, 0.008 0.60), centres (centring only) started at the first
 *    batch's teacher mean, teacher momentum 0.99 held (0.99 → 1 turned sooner, 0.996 barely moves
 *    the teacher in a few hundred steps);
 *  - a peak lr of 7.8e-4 at batch 2 (base 0.1 per 256 images; 2e-3 collapsed into one prototype).
 * With these the DINO loss falls to ~0.68× its start by step 150, rises back to ~0.85–0.9× and levels
 * there; the teacher stays at ~0.8 ln K with over 100 distinct argmax prototypes (seeds 0 and 1).
 */
import { ReefError } from '../gpu/errors.js';
import { preset, type ModelConfig } from '../models/swin3d/config.js';
import type { ClipMode } from './grad-clip.js';
import { MULTISCALE_MAPS, parseEmbeddingMaps } from '../models/swin3d/coralbay-encoder.js';
import type { DinoTrainerOptions } from './dino-trainer.js';
import type { BatchSpec } from './pretrain-batch.js';
import { DEFAULT_AUGMENT } from '../data/augment.js';

export interface PretrainRecipe {
  model: string;
  batch: number;
  /** Micro-batches of `batch` images per optimizer step (gradient accumulation). */
  accumulate: number;
  globalSide: number;
  localSide: number;
  locals: number;
  prototypes: number;
  headHidden: number;
  bottleneck: number;
  studentTemp: number;
  teacherTemp: number;
  warmupTeacherTemp: number;
  warmupTeacherTempEpochs: number;
  centerMomentum: number;
  centering: 'centre' | 'sinkhorn';
  /** With Sinkhorn–Knopp: rows of past teacher logits balanced together with each batch's (0: none). */
  sinkhornQueue: number;
  /** The centres' start: 0 (DINO) or the first batch's teacher mean. */
  centerInit: 'zero' | 'batch';
  momentumTeacher: number;
  /** The teacher momentum's end value (cosine from momentumTeacher; DINO: 1). */
  momentumTeacherEnd: number;
  baseLr: number;
  minLr: number;
  warmupEpochs: number;
  weightDecay: number;
  weightDecayEnd: number;
  freezeLastLayerEpochs: number;
  epochSteps: number;
  ibotWeight: number;
  koleoWeight: number;
  /** The encoder maps whose means make the embedding the DINO head, KoLeo and SIGReg see (comma list). */
  embeddingMaps: string;
  /** SIGReg on the student's global embeddings (0: off) and its number of random slices. */
  sigregWeight: number;
  sigregSlices: number;
  /** Stochastic depth rate of the student's last Swin block (a linear ramp from 0, as MONAI). */
  dropPath: number;
  /** 'stages': the student's SwinViT stages and UNETR blocks are recomputed in backward (less memory, ~1 more forward). */
  recompute: 'none' | 'stages';
  /** The encoders' activations: f16 (f32 master weights, dynamic loss scaling), f32, or auto (f16 on a GPU with shader-f16). */
  precision: 'auto' | 'f16' | 'f32';
  clip: number;
  clipMode: ClipMode;
  /** Crop scale ranges (volume fraction of the body's bounding box). */
  globalScale: [number, number];
  localScale: [number, number];
  /** Volume fraction of the per-sample region all of a sample's crops come from; 1,1: the whole scan. */
  regionScale: [number, number];
  /** One HU window per sample (all its crops) or one per crop. */
  windows: 'per-view' | 'per-sample';
  /** Per-crop augmentation probabilities: each axis's flip, Gaussian smoothing, histogram shift. */
  flipProb: number;
  smoothProb: number;
  histogramShiftProb: number;
  maskRatio: [number, number];
  maskProbability: number;
}

const DINO: Omit<PretrainRecipe, 'model' | 'batch' | 'globalSide' | 'localSide' | 'prototypes' | 'headHidden'> = {
  locals: 4,
  accumulate: 1,
  bottleneck: 256,
  studentTemp: 0.1,
  teacherTemp: 0.07,
  warmupTeacherTemp: 0.04,
  warmupTeacherTempEpochs: 30,
  centerMomentum: 0.9,
  centering: 'centre',
  sinkhornQueue: 0,
  centerInit: 'zero',
  momentumTeacher: 0.996,
  momentumTeacherEnd: 1,
  baseLr: 5e-4,
  minLr: 1e-6,
  warmupEpochs: 10,
  weightDecay: 0.04,
  weightDecayEnd: 0.4,
  freezeLastLayerEpochs: 1,
  epochSteps: 1250,
  ibotWeight: 1,
  koleoWeight: 0.1,
  embeddingMaps: MULTISCALE_MAPS.join(','),
  sigregWeight: 0,
  sigregSlices: 256,
  dropPath: 0,
  recompute: 'none',
  precision: 'auto',
  clip: 3,
  clipMode: 'global',
  globalScale: [0.4, 1],
  localScale: [0.05, 0.4],
  regionScale: [1, 1],
  windows: 'per-view',
  flipProb: DEFAULT_AUGMENT.flipProb,
  smoothProb: DEFAULT_AUGMENT.smoothProb,
  histogramShiftProb: DEFAULT_AUGMENT.histogramShiftProb,
  maskRatio: [0.1, 0.5],
  maskProbability: 0.5,
};

export const RECIPES: Record<string, PretrainRecipe> = {
  tiny: {
    ...DINO,
    model: 'coralbay-tiny',
    batch: 2,
    globalSide: 32,
    localSide: 16,
    prototypes: 4096,
    headHidden: 256,
    baseLr: 0.1,
    warmupEpochs: 1,
    teacherTemp: 0.008,
    warmupTeacherTemp: 0.008,
    warmupTeacherTempEpochs: 1,
    centering: 'sinkhorn',
    sinkhornQueue: 256,
    centerInit: 'batch',
    momentumTeacher: 0.99,
    momentumTeacherEnd: 0.99,
    embeddingMaps: 'enc0,enc1,enc2,enc3',
    flipProb: 0,
    regionScale: [0.05, 0.15],
    windows: 'per-sample',
    epochSteps: 50,
  },
  'coralbay-b': { ...DINO, model: 'coralbay-b', batch: 2, globalSide: 96, localSide: 48, prototypes: 65536, headHidden: 2048 },
  'coralbay-h': { ...DINO, model: 'coralbay-h', batch: 2, globalSide: 96, localSide: 48, prototypes: 65536, headHidden: 2048 },
};

export function recipe(name: string): PretrainRecipe {
  const r = RECIPES[name];
  if (!r) throw new ReefError(`unknown pretraining preset '${name}' (have ${Object.keys(RECIPES).join(', ')})`);
  return structuredClone(r);
}

export function recipeModel(r: PretrainRecipe): ModelConfig {
  return preset(r.model);
}

/** What a run of `steps` steps of recipe `r` needs: the batch spec and the trainer's options. */
export function recipeRun(r: PretrainRecipe, steps: number, seed: number): { spec: BatchSpec; options: DinoTrainerOptions } {
  const model = recipeModel(r);
  const accumulate = r.accumulate ?? 1;
  if (!(Number.isInteger(accumulate) && accumulate >= 1)) throw new ReefError(`--accumulate ${accumulate}: expected an integer ≥ 1`);
  const queue = r.sinkhornQueue ?? 0;
  if (!(Number.isInteger(queue) && queue >= 0)) throw new ReefError(`--sinkhorn-queue ${queue}: expected a whole number of rows`);
  for (const key of ['flipProb', 'smoothProb', 'histogramShiftProb'] as const) {
    const p = r[key];
    if (p !== undefined && !(p >= 0 && p <= 1)) throw new ReefError(`--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${p}: expected a probability in [0, 1]`);
  }
  const spec: BatchSpec = {
    batch: r.batch,
    accumulate,
    seed,
    crops: { nGlobal: 2, nLocal: r.locals, globalSide: r.globalSide, localSide: r.localSide, globalScale: r.globalScale, localScale: r.localScale, regionScale: r.regionScale && r.regionScale[0] < 1 ? r.regionScale : null, windowPerSample: r.windows === 'per-sample',
      augment: { flipProb: r.flipProb ?? DEFAULT_AUGMENT.flipProb, smoothProb: r.smoothProb ?? DEFAULT_AUGMENT.smoothProb, histogramShiftProb: r.histogramShiftProb ?? DEFAULT_AUGMENT.histogramShiftProb } },
    masks: { ratio: r.maskRatio, probability: r.maskProbability },
    patch: model.patch,
  };
  const epochs = steps / r.epochSteps;
  const options: DinoTrainerOptions = {
    model,
    batch: r.batch,
    globals: 2,
    locals: r.locals,
    globalSide: r.globalSide,
    localSide: r.localSide,
    prototypes: r.prototypes,
    headHidden: r.headHidden,
    bottleneck: r.bottleneck,
    studentTemp: r.studentTemp,
    centerMomentum: r.centerMomentum,
    centering: r.centering,
    sinkhornQueue: r.sinkhornQueue ?? 0,
    centerInit: r.centerInit ?? 'zero',
    ibotWeight: r.ibotWeight,
    koleoWeight: r.koleoWeight,
    embeddingMaps: parseEmbeddingMaps(r.embeddingMaps ?? MULTISCALE_MAPS.join(','), 'embeddingMaps'),
    clip: r.clip,
    clipMode: r.clipMode,
    seed,
    accumulate,
    sigregWeight: r.sigregWeight ?? 0,
    sigregSlices: r.sigregSlices ?? 256,
    dropPath: r.dropPath ?? 0,
    recompute: r.recompute === 'stages',
    precision: r.precision ?? 'auto',
    schedules: {
      epochs,
      epochSteps: r.epochSteps,
      batchSize: r.batch * accumulate,
      baseLr: r.baseLr,
      minLr: r.minLr,
      warmupEpochs: Math.min(r.warmupEpochs, epochs),
      weightDecay: r.weightDecay,
      weightDecayEnd: r.weightDecayEnd,
      momentumTeacher: r.momentumTeacher,
      momentumTeacherEnd: r.momentumTeacherEnd ?? 1,
      warmupTeacherTemp: r.warmupTeacherTemp,
      teacherTemp: r.teacherTemp,
      warmupTeacherTempEpochs: r.warmupTeacherTempEpochs,
      freezeLastLayerEpochs: r.freezeLastLayerEpochs,
    },
  };
  return { spec, options };
}
