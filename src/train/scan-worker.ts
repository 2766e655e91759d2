/**
 * Worker-thread entry for the pretraining data loader (scan-loader.ts): `prepare` reads, resamples
 * and indexes one scan and returns it in SharedArrayBuffers (the main thread keeps it in its cache
 * and hands it back with each `cut`, with no copy); `cut` writes one image's crops into the step's
 * shared crop arrays. The crops depend only on (seed, step, image), as on the main thread.
 */
import { parentPort } from 'node:worker_threads';
import type { CropSource } from '../data/crops.js';
import { prepareScan, type ScanPrepareOptions } from '../data/scan-file.js';
import { cutImage, type BatchSpec } from './pretrain-batch.js';

export type ScanJob =
  | { kind: 'prepare'; id: number; path: string; options: ScanPrepareOptions }
  | { kind: 'cut'; id: number; source: CropSource; step: number; image: number; b: number; spec: BatchSpec; globals: Float32Array; locals: Float32Array };

export type ScanReply =
  | { id: number; ok: true; source?: CropSource; logs: string[] }
  | { id: number; ok: false; message: string };

/** Copies a source's big arrays into SharedArrayBuffers, so that it crosses threads by reference. */
export function shareSource(src: CropSource): CropSource {
  const share = <T extends Float32Array | Uint32Array>(a: T, make: (b: SharedArrayBuffer) => T): T => {
    const out = make(new SharedArrayBuffer(a.byteLength));
    out.set(a);
    return out;
  };
  return {
    ...src,
    volume: { ...src.volume, data: share(src.volume.data, (b) => new Float32Array(b)) },
    foreground: share(src.foreground, (b) => new Uint32Array(b)),
  };
}

async function handle(job: ScanJob): Promise<ScanReply> {
  if (job.kind === 'prepare') {
    const logs: string[] = [];
    const src = await prepareScan(job.path, job.options, (l) => logs.push(l));
    return { id: job.id, ok: true, source: shareSource(src), logs };
  }
  cutImage(job.source, job.step, job.image, job.b, job.spec, job.globals, job.locals);
  return { id: job.id, ok: true, logs: [] };
}

if (parentPort) {
  const port = parentPort;
  port.on('message', (job: ScanJob) => {
    handle(job).then(
      (reply) => port.postMessage(reply),
      (e: unknown) => port.postMessage({ id: job.id, ok: false, message: e instanceof Error ? e.message : String(e) } satisfies ScanReply),
    );
  });
}
