/**
 * The pretraining data loader (Node): scans are read, resampled and indexed in worker threads (or
 * on this thread when there are none), kept in memory under a byte budget (least recently used out),
 * and each step's crops are cut in the workers too, so the training loop only awaits a promise that
 * was started a step ahead. Nothing here changes what a step sees: the crops depend on
 * (seed, step, image) and the list of usable scans alone, so the worker count and the budget can
 * differ between a run and its resumption.
 *
 * `open` reads every scan once: bad files are reported and skipped at the start, not hours in, and
 * the usable list is fixed before step 0 (a run directory keeps it, and a resumed run opens that
 * list with `keepListed`, so a scan lost since does not shift every later step, and `lazy`, so that
 * it only checks the files are there and reads each when a step needs it). A scan that fails
 * later (changed or removed during the run) is reported once and its images come from the next
 * usable scan; which steps see that depends on when it is next read, so only unchanging files give
 * bitwise-repeatable runs. A dead worker is not a bad scan: the pool replaces it, and a job it
 * loses twice stops the run with a ScanWorkerError naming the job.
 */
import { DataError } from '../data/errors.js';
import type { CropSource } from '../data/crops.js';
import { prepareScan, scanMissing, type ScanPrepareOptions } from '../data/scan-file.js';
import { ScanWorkerError, ScanWorkers } from './scan-workers.js';
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
  /** Log how far `open` has got at most this often (default 10 s). */
  progressEveryMs?: number;
  /** How long a worker may take over one job before it is stopped (default 10 minutes). */
  jobTimeoutMs?: number;
  /** Keep every listed scan in `usable` even if it fails now (a resumed run's saved list): it is reported and passed over like a scan lost mid-run. */
  keepListed?: boolean;
  /**
   * With `keepListed`: do not read the scans at open, only check that each file is still there; each
   * is read when a step first needs it. A resumed run's list was read through when the run began,
   * and reading a big folder again would hold up the resumption for minutes.
   */
  lazy?: boolean;
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
  /** Listed scans that `open` dropped, with the reason. */
  skipped: { path: string; reason: string }[] = [];
  private closed = false;

  private constructor(private readonly o: ScanLoaderOptions) {
    this.log = o.log ?? (() => {});
    this.cache = new VolumeCache({ prepare: (path) => this.prepare(path), maxBytes: o.maxBytes }); // checks maxBytes before any thread starts
    this.pool = o.workerScript ? new ScanWorkers(o.workerScript, o.workers ?? 1, o.jobTimeoutMs) : null;
  }

  /** Reads every listed scan once (as many at a time as there are workers), reporting and dropping bad ones. */
  static async open(paths: readonly string[], o: ScanLoaderOptions): Promise<ScanLoader> {
    if (o.lazy) {
      if (!o.keepListed) throw new DataError('ScanLoader: lazy opening is for a saved list (keepListed)');
      return ScanLoader.openListed(paths, o);
    }
    const loader = new ScanLoader(o);
    const reasons = new Array<string | null>(paths.length).fill(null);
    let next = 0;
    let done = 0;
    let bad = 0;
    // A big folder takes minutes to read: say how far it has got.
    const every = o.progressEveryMs ?? 10_000;
    let lastReport = Date.now();
    const lane = async () => {
      while (next < paths.length) {
        const i = next++;
        try {
          await loader.cache.get(paths[i]!);
        } catch (e) {
          if (e instanceof ScanWorkerError) throw e; // a dead worker says nothing about the scan
          reasons[i] = (e as Error).message;
          bad++;
          loader.log(`skipping ${paths[i]}: ${reasons[i]}`);
        }
        done++;
        if (done < paths.length && Date.now() - lastReport >= every) {
          lastReport = Date.now();
          loader.log(`reading scans: ${done}/${paths.length}${bad ? ` (${bad} skipped)` : ''}`);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.max(1, loader.pool?.size ?? 1) }, lane));
    } catch (e) {
      await loader.close();
      throw e;
    }
    loader.usable = o.keepListed ? [...paths] : paths.filter((_, i) => reasons[i] === null);
    loader.skipped = paths.flatMap((path, i) => (reasons[i] === null ? [] : [{ path, reason: reasons[i]! }]));
    if (o.keepListed) reasons.forEach((r, i) => r !== null && loader.failed.add(i));
    if (loader.usable.length === loader.failed.size) {
      await loader.close();
      throw new DataError(`none of the ${paths.length} volume(s) could be used (see the messages above)`);
    }
    return loader;
  }

  /** A saved list, read later: files gone since are reported now and passed over in place. */
  private static async openListed(paths: readonly string[], o: ScanLoaderOptions): Promise<ScanLoader> {
    const loader = new ScanLoader(o);
    loader.usable = [...paths];
    const found = await Promise.all(paths.map(scanMissing));
    found.forEach((reason, i) => {
      if (reason === null) return;
      loader.skipped.push({ path: paths[i]!, reason: `listed when the run began, now ${reason}` });
      loader.failed.add(i);
      loader.log(`skipping ${paths[i]}: listed when the run began, now ${reason} (its images come from the next scan)`);
    });
    if (loader.failed.size === paths.length) {
      await loader.close();
      throw new DataError(`none of the ${paths.length} listed volume(s) is there any more (see the messages above)`);
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
    const options: ScanPrepareOptions = { minSide: this.o.minSide, ...(this.o.cacheDir ? { cacheDir: this.o.cacheDir } : {}) };
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
      if (this.closed) throw new DataError('the scan loader is closed');
      try {
        return await this.cache.get(this.usable[i]!);
      } catch (e) {
        // A closed loader or a dead worker says nothing about the scan.
        if (this.closed || e instanceof ScanWorkerError) throw e;
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
    this.closed = true;
    this.cache.clear();
    await this.pool?.close();
  }
}
