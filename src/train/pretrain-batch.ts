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

/**
 * Builds micro-batch `micro` of step `step` from prepared volumes (view-major rows: v·B + b). Its
 * images are the step's images micro·B … micro·B + B − 1, each keyed by that index, so a step of one
 * micro-batch is the same whatever the accumulation.
 */
export function makeBatch(sources: readonly CropSource[], step: number, spec: BatchSpec, micro = 0): DinoBatch {
  const { batch: B, crops } = spec;
  const N = spec.accumulate ?? 1;
  if (!(Number.isInteger(micro) && micro >= 0 && micro < N)) throw new ReefError(`makeBatch: micro-batch ${micro} of ${N}`);
  const G = crops.nGlobal;
  const L = crops.nLocal;
  const gSize = crops.globalSide ** 3;
  const lSize = crops.localSide ** 3;
  const globals = new Float32Array(G * B * gSize);
  const locals = new Float32Array(L * B * lSize);
  for (let b = 0; b < B; b++) {
    const image = micro * B + b;
    const src = sources[volumeIndex(step, image, B * N, sources.length)]!;
    sampleMultiCrop(src, Rng.fromKeys(spec.seed, step, image), crops, {
      globals: Array.from({ length: G }, (_, v) => globals.subarray((v * B + b) * gSize, (v * B + b + 1) * gSize)),
      locals: Array.from({ length: L }, (_, v) => locals.subarray((v * B + b) * lSize, (v * B + b + 1) * lSize)),
    });
  }
  const side = crops.globalSide / (spec.patch ?? 2);
  const grid: Grid3 = [side, side, side];
  // Keys past the step's image keys: a separate mask stream per micro-batch.
  const masks = ibotMasks(G * B, grid, Rng.fromKeys(spec.seed, step, B * N + 1 + micro), spec.masks);
  return { globals, locals, masks };
}
