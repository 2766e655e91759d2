/**
 * The pretraining data loader (Node): scans are read, resampled and indexed in worker threads (or
 * on this thread when there are none), kept in memory under a byte budget (least recently used out),
 * and each step's crops are cut in the workers too, so the training loop only awaits a promise that
 * was started a step ahead. Nothing here changes what a step sees: the crops depend on
 * (seed, step, image) and the list of usable scans alone, so the worker count and the budget can
 * differ between a run and its resumption.
 *
 * `open` reads every scan once: bad files are reported and skipped at the start, not hours in, and
 * the usable list is fixed before step 0. A scan that fails later (changed or removed during the
 * run) is reported once and its images come from the next usable scan.
 */
import { DataError } from '../data/errors.js';
import type { CropSource } from '../data/crops.js';
import { prepareScan, type ScanPrepareOptions } from '../data/scan-file.js';
import { ScanWorkers } from './scan-workers.js';
import { VolumeCache } from '../data/volume-cache.js';
import { batchMasks, batchSizes, cutImage, stepImages, type BatchSpec } from './pretrain-batch.js';
import type { DinoBatch } from './dino-trainer.js';

export interface ScanLoaderOptions extends ScanPrepareOptions {
  /** Worker script (the bundled scan-worker.mjs); null: everything on this thread. */
  workerScript: URL | null;
  /** Worker threads (default 1; ignored without a script). */
  workers?: number;
  /** Memory budget for prepared scans; default 4 GiB. */
  maxBytes?: number;
  log?: (line: string) => void;
}

export class ScanLoader {
  private readonly cache: VolumeCache;
  private readonly pool: ScanWorkers | null;
  private readonly log: (line: string) => void;
  /** Scans that failed after `open`: reported once, then passed over. */
  private readonly failed = new Set<number>();
  /** The scans that passed `open`'s reading, in listing order; steps index into this. */
  usable: string[] = [];

  private constructor(private readonly o: ScanLoaderOptions) {
    this.log = o.log ?? (() => {});
    this.pool = o.workerScript ? new ScanWorkers(o.workerScript, o.workers ?? 1) : null;
    this.cache = new VolumeCache({ prepare: (path) => this.prepare(path), maxBytes: o.maxBytes });
  }

  /** Reads every listed scan once (as many at a time as there are workers), reporting and dropping bad ones. */
  static async open(paths: readonly string[], o: ScanLoaderOptions): Promise<ScanLoader> {
    const loader = new ScanLoader(o);
    const ok = new Array<boolean>(paths.length).fill(false);
    let next = 0;
    const lane = async () => {
      while (next < paths.length) {
        const i = next++;
        try {
          await loader.cache.get(paths[i]!);
          ok[i] = true;
        } catch (e) {
          loader.log(`skipping ${paths[i]}: ${(e as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, loader.pool?.size ?? 1) }, lane));
    loader.usable = paths.filter((_, i) => ok[i]);
    if (loader.usable.length === 0) {
      await loader.close();
      throw new DataError(`none of the ${paths.length} volume(s) could be used (see the messages above)`);
    }
    return loader;
  }

  get workers(): number {
    return this.pool?.size ?? 0;
  }

  get maxBytes(): number {
    return this.cache.maxBytes;
  }

  /** Bytes of prepared scans held now. */
  get cachedBytes(): number {
    return this.cache.usedBytes;
  }

  private async prepare(path: string): Promise<CropSource> {
    const options: ScanPrepareOptions = { minSide: this.o.minSide };
    if (!this.pool) return prepareScan(path, options, this.log);
    const reply = await this.pool.run({ kind: 'prepare', path, options });
    for (const line of reply.logs) this.log(line);
    return reply.source!;
  }

  /** Usable scan `index`, or the next one that still loads (a scan that fails now is reported once). */
  async source(index: number): Promise<CropSource> {
    const n = this.usable.length;
    for (let k = 0; k < n; k++) {
      const i = (index + k) % n;
      if (this.failed.has(i)) continue;
      try {
        return await this.cache.get(this.usable[i]!);
      } catch (e) {
        if (!this.failed.has(i)) this.log(`skipping ${this.usable[i]}: ${(e as Error).message} (it loaded at the start; its images now come from the next scan)`);
        this.failed.add(i);
      }
    }
    throw new DataError(`none of the ${n} usable volume(s) can be read any more (see the messages above)`);
  }

  /** Starts reading the scans step `step` will need; errors surface when the step asks for them. */
  prefetch(step: number, spec: BatchSpec): void {
    for (const im of stepImages(step, spec, this.usable.length)) this.source(im.volume).catch(() => {});
  }

  /** Step `step`'s micro-batches, cut in the workers when there are any. */
  async batches(step: number, spec: BatchSpec): Promise<DinoBatch[]> {
    const sizes = batchSizes(spec);
    const shared = this.pool !== null;
    const alloc = (n: number) => (shared ? new Float32Array(new SharedArrayBuffer(n * 4)) : new Float32Array(n));
    const arrays = Array.from({ length: spec.accumulate ?? 1 }, () => ({ globals: alloc(sizes.globals), locals: alloc(sizes.locals) }));
    await Promise.all(
      stepImages(step, spec, this.usable.length).map(async (im) => {
        const src = await this.source(im.volume);
        const { globals, locals } = arrays[im.micro]!;
        if (this.pool) await this.pool.run({ kind: 'cut', source: src, step, image: im.image, b: im.b, spec, globals, locals });
        else cutImage(src, step, im.image, im.b, spec, globals, locals);
      }),
    );
    // slice() of a shared view is an ordinary array: the trainer's uploads never see shared memory.
    return arrays.map((a, micro) => ({ globals: shared ? a.globals.slice() : a.globals, locals: shared ? a.locals.slice() : a.locals, masks: batchMasks(step, spec, micro) }));
  }

  async close(): Promise<void> {
    this.cache.clear();
    await this.pool?.close();
  }
}
