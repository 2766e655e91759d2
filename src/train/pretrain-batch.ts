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

export interface BatchSpec {
  batch: number;
  seed: number;
  crops: Partial<MultiCropOptions> & Pick<MultiCropOptions, 'nGlobal' | 'nLocal' | 'globalSide' | 'localSide'>;
  masks?: IbotMaskOptions;
  /** Patch size of the encoder (the mask grid is the global crop / patch). */
  patch?: number;
}

/** Which volume image b of step `step` comes from: the data is walked in order, B per step. */
export function volumeIndex(step: number, b: number, batch: number, volumes: number): number {
  return (step * batch + b) % volumes;
}

/** Builds step `step`'s batch from prepared volumes (view-major rows: v·B + b). */
export function makeBatch(sources: readonly CropSource[], step: number, spec: BatchSpec): DinoBatch {
  const { batch: B, crops } = spec;
  const G = crops.nGlobal;
  const L = crops.nLocal;
  const gSize = crops.globalSide ** 3;
  const lSize = crops.localSide ** 3;
  const globals = new Float32Array(G * B * gSize);
  const locals = new Float32Array(L * B * lSize);
  for (let b = 0; b < B; b++) {
    const src = sources[volumeIndex(step, b, B, sources.length)]!;
    sampleMultiCrop(src, Rng.fromKeys(spec.seed, step, b), crops, {
      globals: Array.from({ length: G }, (_, v) => globals.subarray((v * B + b) * gSize, (v * B + b + 1) * gSize)),
      locals: Array.from({ length: L }, (_, v) => locals.subarray((v * B + b) * lSize, (v * B + b + 1) * lSize)),
    });
  }
  const side = crops.globalSide / (spec.patch ?? 2);
  const grid: Grid3 = [side, side, side];
  // Key B + 1 past the images' keys: a separate stream for the masks.
  const masks = ibotMasks(G * B, grid, Rng.fromKeys(spec.seed, step, B + 1), spec.masks);
  return { globals, locals, masks };
}
