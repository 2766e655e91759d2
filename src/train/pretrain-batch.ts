/**
 * The crops and iBOT masks of one pretraining step. Everything random is drawn from streams keyed by
 * (seed, step, image), so a step's batch depends on nothing but those numbers: a resumed run sees the
 * same data as one that was never stopped, with no data-loader state to save.
 */
import { sampleMultiCrop, type MultiCropOptions } from '../data/multicrop.js';
import { Rng } from '../data/rng.js';
import type { CropSource } from '../data/crops.js';
import { ibotMasks, type Grid3, type IbotMaskOptions } from './masking.js';
import type { DinoBatch } from './dino-trainer.js';
import { ReefError } from '../gpu/errors.js';

export interface BatchSpec {
  /** Images per micro-batch. */
  batch: number;
  /** Micro-batches per step (gradient accumulation); default 1. */
  accumulate?: number;
  seed: number;
  crops: Partial<MultiCropOptions> & Pick<MultiCropOptions, 'nGlobal' | 'nLocal' | 'globalSide' | 'localSide'>;
  masks?: IbotMaskOptions;
  /** Patch size of the encoder (the mask grid is the global crop / patch). */
  patch?: number;
}

/** Which volume image i of step `step` comes from: the data is walked in order, `perStep` images per step. */
export function volumeIndex(step: number, i: number, perStep: number, volumes: number): number {
  return (step * perStep + i) % volumes;
}

/** Step `step`'s micro-batches (one unless `spec.accumulate` says more). */
export function makeBatches(sources: readonly CropSource[], step: number, spec: BatchSpec): DinoBatch[] {
  return Array.from({ length: spec.accumulate ?? 1 }, (_, m) => makeBatch(sources, step, spec, m));
}

/** One image of a step: its key (micro·B + b), its place in its micro-batch, the volume it is cut from. */
export interface StepImage {
  micro: number;
  b: number;
  image: number;
  volume: number;
}

/** The images of step `step`, micro-batch by micro-batch, over `volumes` volumes. */
export function stepImages(step: number, spec: BatchSpec, volumes: number): StepImage[] {
  const B = spec.batch;
  const N = spec.accumulate ?? 1;
  const out: StepImage[] = [];
  for (let micro = 0; micro < N; micro++) {
    for (let b = 0; b < B; b++) out.push({ micro, b, image: micro * B + b, volume: volumeIndex(step, micro * B + b, B * N, volumes) });
  }
  return out;
}

/**
 * Cuts image `image` of step `step` from `src` into row b of a micro-batch's crop arrays (view-major
 * rows: v·B + b). Its randomness is the stream keyed (seed, step, image) alone, so any thread cuts
 * the same crops.
 */
export function cutImage(src: CropSource, step: number, image: number, b: number, spec: BatchSpec, globals: Float32Array, locals: Float32Array): void {
  const { batch: B, crops } = spec;
  const gSize = crops.globalSide ** 3;
  const lSize = crops.localSide ** 3;
  sampleMultiCrop(src, Rng.fromKeys(spec.seed, step, image), crops, {
    globals: Array.from({ length: crops.nGlobal }, (_, v) => globals.subarray((v * B + b) * gSize, (v * B + b + 1) * gSize)),
    locals: Array.from({ length: crops.nLocal }, (_, v) => locals.subarray((v * B + b) * lSize, (v * B + b + 1) * lSize)),
  });
}

/** Element counts of one micro-batch's crop arrays. */
export function batchSizes(spec: BatchSpec): { globals: number; locals: number } {
  return { globals: spec.crops.nGlobal * spec.batch * spec.crops.globalSide ** 3, locals: spec.crops.nLocal * spec.batch * spec.crops.localSide ** 3 };
}

/** The iBOT masks of micro-batch `micro` of step `step`. */
export function batchMasks(step: number, spec: BatchSpec, micro: number): Uint8Array[] {
  const B = spec.batch;
  const N = spec.accumulate ?? 1;
  const side = spec.crops.globalSide / (spec.patch ?? 2);
  const grid: Grid3 = [side, side, side];
  // Keys past the step's image keys: a separate mask stream per micro-batch.
  return ibotMasks(spec.crops.nGlobal * B, grid, Rng.fromKeys(spec.seed, step, B * N + 1 + micro), spec.masks);
}

/**
 * Builds micro-batch `micro` of step `step` from prepared volumes (view-major rows: v·B + b). Its
 * images are the step's images micro·B … micro·B + B − 1, each keyed by that index, so a step of one
 * micro-batch is the same whatever the accumulation.
 */
export function makeBatch(sources: readonly CropSource[], step: number, spec: BatchSpec, micro = 0): DinoBatch {
  const N = spec.accumulate ?? 1;
  if (!(Number.isInteger(micro) && micro >= 0 && micro < N)) throw new ReefError(`makeBatch: micro-batch ${micro} of ${N}`);
  const sizes = batchSizes(spec);
  const globals = new Float32Array(sizes.globals);
  const locals = new Float32Array(sizes.locals);
  for (const im of stepImages(step, spec, sources.length)) {
    if (im.micro === micro) cutImage(sources[im.volume]!, step, im.image, im.b, spec, globals, locals);
  }
  return { globals, locals, masks: batchMasks(step, spec, micro) };
}
