/**
 * A small pool of Node worker threads running scan-worker.ts: jobs go to the worker with the fewest
 * in flight, and each reply settles its job's promise. Workers are unref'd, so an idle pool never
 * keeps the process alive; a worker that dies fails its jobs with a message saying so and gets no
 * more (a worker script that cannot load fails every job, never hangs one).
 */
import { Worker } from 'node:worker_threads';
import { DataError } from '../data/errors.js';
import type { ScanJob, ScanReply } from './scan-worker.js';

interface Pending {
  resolve: (reply: ScanReply & { ok: true }) => void;
  reject: (e: Error) => void;
  worker: number;
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
/** A job as sent: its id is added by the pool. */
export type ScanJobInput = WithoutId<ScanJob>;

export class ScanWorkers {
  private readonly workers: Worker[] = [];
  private readonly inFlight: number[] = [];
  /** Why each worker stopped, or null while it runs: a stopped worker gets no more jobs. */
  private readonly dead: (string | null)[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(script: URL, count: number) {
    if (!(Number.isInteger(count) && count >= 1)) throw new DataError(`scan workers: count must be an integer ≥ 1, got ${count}`);
    for (let w = 0; w < count; w++) {
      const worker = new Worker(script);
      worker.unref();
      worker.on('message', (reply: ScanReply) => this.settle(reply));
      worker.on('error', (e) => this.fail(w, `scan worker ${w} failed: ${e.message}`));
      worker.on('exit', (code) => this.fail(w, `scan worker ${w} exited (code ${code})`));
      this.workers.push(worker);
      this.inFlight.push(0);
      this.dead.push(null);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  run(job: ScanJobInput): Promise<ScanReply & { ok: true }> {
    if (this.closed) return Promise.reject(new DataError('scan workers: the pool is closed'));
    let w = -1;
    for (let i = 0; i < this.workers.length; i++) if (!this.dead[i] && (w < 0 || this.inFlight[i]! < this.inFlight[w]!)) w = i;
    if (w < 0) return Promise.reject(new DataError(`scan workers: every worker has stopped (${this.dead.find((d) => d) ?? 'unknown cause'})`));
    const id = this.nextId++;
    this.inFlight[w]!++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker: w });
      this.workers[w]!.postMessage({ ...job, id } as ScanJob);
    });
  }

  private settle(reply: ScanReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    this.inFlight[p.worker]!--;
    if (reply.ok) p.resolve(reply);
    else p.reject(new DataError(reply.message));
  }

  private fail(worker: number, message: string): void {
    this.dead[worker] ??= message;
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      p.reject(new DataError(message));
    }
    this.inFlight[worker] = 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
