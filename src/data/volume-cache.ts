/**
 * Prepared volumes (resampled once to the training spacing, foreground indexed) kept in memory
 * under a byte budget, least recently used first out. Concurrent requests for one key share a
 * single load.
 */
import type { Volume } from './nifti.js';
import { prepareCropSource, FOREGROUND_HU, type CropSource } from './crops.js';
import { DataError } from './errors.js';
import { DEFAULT_SPACING_MM, resampleVolume } from './resample.js';

export interface VolumeCacheOptions {
  /** Loads the raw volume for a key (a path, an id); it is resampled and indexed here. */
  load?: (key: string) => Promise<Volume>;
  /** Or: makes the prepared source for a key elsewhere (e.g. in a worker thread). */
  prepare?: (key: string) => Promise<CropSource>;
  /** Target spacing in mm; default 1.5 isotropic. */
  spacing?: number | readonly [number, number, number];
  threshold?: number;
  /** Budget for resampled data and foreground indices; default 4 GiB. */
  maxBytes?: number;
}

interface Slot {
  promise: Promise<CropSource>;
  bytes: number;
  /** Loaded and counted; a slot still loading is never evicted (that would free nothing). */
  settled: boolean;
}

export function preparedBytes(src: CropSource): number {
  return src.volume.data.byteLength + src.foreground.byteLength;
}

/** Resample then index: what a loader does once per scan. */
export function prepareVolume(vol: Volume, spacing: number | readonly number[] = DEFAULT_SPACING_MM, threshold = FOREGROUND_HU): CropSource {
  return prepareCropSource(resampleVolume(vol, spacing), threshold);
}

export class VolumeCache {
  private readonly slots = new Map<string, Slot>();
  private bytes = 0;
  readonly maxBytes: number;

  constructor(private readonly opts: VolumeCacheOptions) {
    this.maxBytes = opts.maxBytes ?? 4 * 2 ** 30;
    if (!opts.load === !opts.prepare) throw new DataError('VolumeCache: give exactly one of load and prepare');
    if (!(this.maxBytes > 0)) throw new DataError(`VolumeCache: maxBytes must be positive, got ${this.maxBytes}`);
  }

  get size(): number {
    return this.slots.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }

  get(key: string): Promise<CropSource> {
    const hit = this.slots.get(key);
    if (hit) {
      // Re-insert: Map order is the recency order.
      this.slots.delete(key);
      this.slots.set(key, hit);
      return hit.promise;
    }
    const slot = { bytes: 0, settled: false } as Slot;
    const { load, prepare } = this.opts;
    const prepared = prepare ? prepare(key) : load!(key).then((vol) => prepareVolume(vol, this.opts.spacing, this.opts.threshold));
    slot.promise = prepared.then(
      (src) => {
        if (this.slots.get(key) === slot) {
          slot.bytes = preparedBytes(src);
          slot.settled = true;
          this.bytes += slot.bytes;
          this.evict(key);
        }
        return src;
      },
      (e: unknown) => {
        if (this.slots.get(key) === slot) this.slots.delete(key); // a failed load is not cached
        throw e;
      },
    );
    this.slots.set(key, slot);
    return slot.promise;
  }

  /** Drops least recently used entries until within budget, never `keep` (the one just loaded). */
  private evict(keep: string): void {
    for (const [k, s] of this.slots) {
      if (this.bytes <= this.maxBytes) break;
      if (k === keep || !s.settled) continue;
      this.slots.delete(k);
      this.bytes -= s.bytes;
    }
  }

  clear(): void {
    this.slots.clear();
    this.bytes = 0;
  }
}
