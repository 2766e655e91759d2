/**
 * One pretraining sample: G global and L local crops of one prepared volume, each independently
 * cropped (crops.ts) and augmented (augment.ts), in that order: all globals, then all locals.
 *
 * Defaults: 2 globals at 96³ with scale (0.4, 1) and 4 locals at 48³ with scale (0.05, 0.4) —
 * DINO v1's scale ranges (CoralBay extends DINO; its own values are not public). Values are in
 * [0, 1] after the HU window.
 *
 * With `regionScale`, a sample first draws a region (a box of that volume fraction of the body,
 * centred on it) and all its crops come from the region's body. DINO needs the views of one
 * sample to share more than the views of two samples do; when every sample comes from one scan
 * (the demo's head CT), crops of the whole body give none of that, and the loss can only be
 * met by a uniform teacher. Without it the region is the whole scan. `windowPerSample` likewise
 * gives all of a sample's crops one HU window (drawn after the region), where DINO's colour
 * jitter would draw one per view.
 */
import { augmentCrop, DEFAULT_AUGMENT, type AugmentOptions, type AugmentRecord } from './augment.js';
import { checkCropFits, cropResize, regionSource, sampleCropBox, type CropBox, type CropSource } from './crops.js';
import { DataError } from './errors.js';
import type { Rng } from './rng.js';

export interface MultiCropOptions {
  globalSide: number;
  localSide: number;
  nGlobal: number;
  nLocal: number;
  globalScale: readonly [number, number];
  localScale: readonly [number, number];
  aspect: readonly [number, number];
  reference: 'foreground' | 'volume';
  /** Volume-fraction range of the per-sample region the crops come from; null: the whole scan. */
  regionScale: readonly [number, number] | null;
  /** One HU window for all of a sample's crops (drawn from the window list), or one per crop. */
  windowPerSample: boolean;
  /** Augmentation settings for every crop, then per kind (e.g. DINO's asymmetric blur). */
  augment: Partial<AugmentOptions>;
  globalAugment: Partial<AugmentOptions>;
  localAugment: Partial<AugmentOptions>;
}

export const DEFAULT_MULTICROP: Readonly<MultiCropOptions> = {
  globalSide: 96,
  localSide: 48,
  nGlobal: 2,
  nLocal: 4,
  globalScale: [0.4, 1],
  localScale: [0.05, 0.4],
  aspect: [3 / 4, 4 / 3],
  reference: 'foreground',
  regionScale: null,
  windowPerSample: false,
  augment: {},
  globalAugment: {},
  localAugment: {},
};

export interface View {
  /** side³ values, (D, H, W) row-major. */
  data: Float32Array;
  side: number;
  box: CropBox;
  aug: AugmentRecord;
}

export interface MultiCropSample {
  globals: View[];
  locals: View[];
}

/** Optional destination arrays (e.g. slices of a batch buffer), one per crop. */
export interface MultiCropOutput {
  globals?: Float32Array[];
  locals?: Float32Array[];
}

export function sampleMultiCrop(whole: CropSource, rng: Rng, options: Partial<MultiCropOptions> = {}, out: MultiCropOutput = {}): MultiCropSample {
  const o = { ...DEFAULT_MULTICROP, ...options };
  for (const [k, v] of [['nGlobal', o.nGlobal], ['nLocal', o.nLocal]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new DataError(`multicrop: ${k} must be a non-negative integer, got ${v}`);
  }
  // Fail before any work if the scan can't hold the largest crop.
  if (o.nGlobal > 0) checkCropFits(whole.volume, o.globalSide);
  if (o.nLocal > 0) checkCropFits(whole.volume, o.localSide);
  // The region is drawn first (its draws precede the crops'); side 1 skips checkCropFits' test.
  const src = o.regionScale ? regionSource(whole, sampleCropBox(whole, rng, { side: 1, scale: o.regionScale, aspect: o.aspect, reference: o.reference })) : whole;
  // Then the sample's window, if it has one: each crop's augmentation then picks from it alone.
  const shared = o.windowPerSample ? { windows: [rng.pick(o.augment.windows ?? DEFAULT_AUGMENT.windows)] } : {};
  const scratch = new Float32Array(Math.max(o.nGlobal > 0 ? o.globalSide ** 3 : 0, o.nLocal > 0 ? o.localSide ** 3 : 0));

  const make = (kind: 'global' | 'local', n: number): View[] => {
    const side = kind === 'global' ? o.globalSide : o.localSide;
    const spec = { side, scale: kind === 'global' ? o.globalScale : o.localScale, aspect: o.aspect, reference: o.reference };
    const aug = { ...o.augment, ...(kind === 'global' ? o.globalAugment : o.localAugment), ...shared };
    const dests = kind === 'global' ? out.globals : out.locals;
    const views: View[] = [];
    for (let v = 0; v < n; v++) {
      const dest = dests?.[v];
      if (dest && dest.length !== side ** 3) throw new DataError(`multicrop: ${kind} output ${v} holds ${dest.length} values, a ${side}³ crop needs ${side ** 3}`);
      const box = sampleCropBox(src, rng, spec);
      const data = cropResize(src.volume, box, side, dest);
      const rec = augmentCrop(data, [side, side, side], rng, aug, scratch.subarray(0, side ** 3));
      views.push({ data, side, box, aug: rec });
    }
    return views;
  };
  const globals = make('global', o.nGlobal);
  const locals = make('local', o.nLocal);
  return { globals, locals };
}
