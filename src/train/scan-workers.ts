/**
 * A small pool of Node worker threads running scan-worker.ts: jobs go to the worker with the fewest
 * in flight, and each reply settles its job's promise. A worker that dies is replaced and its jobs
 * are sent again (they are pure: reading a scan, cutting crops); a job that has now been lost twice,
 * or that finds no worker left, fails with a ScanWorkerError that names the job, so a crash is never
 * taken for a bad scan and never leaves a job hanging. A worker that holds a job past the time limit
 * (a stuck read) or sends a reply that cannot be decoded is stopped and counts as dead. The pool
 * must be closed (its workers keep the process alive).
 */
import { Worker } from 'node:worker_threads';
import { DataError } from '../data/errors.js';
import type { ScanJob, ScanReply } from './scan-worker.js';

/** The worker running a job died (as opposed to the job's scan being bad). */
export class ScanWorkerError extends DataError {
  constructor(message: string) {
    super(message);
    this.name = 'ScanWorkerError';
  }
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
/** A job as sent: its id is added by the pool. */
export type ScanJobInput = WithoutId<ScanJob>;

interface Pending {
  job: ScanJob;
  resolve: (reply: ScanReply & { ok: true }) => void;
  reject: (e: Error) => void;
  worker: number;
  sends: number;
  /** Fires when the worker has held the job too long: it is then stopped like a dead one. */
  watchdog?: ReturnType<typeof setTimeout>;
}

interface Slot {
  worker: Worker | null;
  inFlight: number;
}

/** Replacements for dead workers over the pool's life: a script that cannot start stops here. */
const MAX_RESPAWNS = 8;

function describeJob(job: ScanJob): string {
  return job.kind === 'prepare' ? `reading ${job.path}` : `cutting image ${job.image} of step ${job.step} from ${job.source.volume.name}`;
}

export class ScanWorkers {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private respawns = 0;
  private closed = false;

  constructor(
    private readonly script: URL,
    count: number,
    /** How long one job may take before its worker is stopped; default 10 minutes. */
    private readonly jobTimeoutMs = 10 * 60_000,
  ) {
    if (!(Number.isInteger(count) && count >= 1)) throw new DataError(`scan workers: count must be an integer ≥ 1, got ${count}`);
    for (let w = 0; w < count; w++) this.spawn(w);
  }

  get size(): number {
    return this.slots.length;
  }

  private spawn(w: number): void {
    const worker = new Worker(this.script);
    worker.on('message', (reply: ScanReply) => this.settle(reply));
    worker.on('messageerror', (e) => {
      this.lost(w, worker, `sent a reply that could not be read (${e.message})`);
      void worker.terminate();
    });
    worker.on('error', (e) => this.lost(w, worker, `failed: ${e.message}`));
    worker.on('exit', (code) => this.lost(w, worker, `exited (code ${code})`));
    this.slots[w] = { worker, inFlight: 0 };
  }

  /** The live worker with the fewest jobs in flight, or -1. */
  private leastBusy(): number {
    let best = -1;
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i]!;
      if (s.worker && (best < 0 || s.inFlight < this.slots[best]!.inFlight)) best = i;
    }
    return best;
  }

  private send(p: Pending, why: string): void {
    const w = this.leastBusy();
    if (w < 0) {
      this.drop(p);
      p.reject(new ScanWorkerError(`scan workers: none left ${describeJob(p.job)} (${why})`));
      return;
    }
    p.worker = w;
    p.sends++;
    const worker = this.slots[w]!.worker!;
    this.slots[w]!.inFlight++;
    clearTimeout(p.watchdog);
    p.watchdog = setTimeout(() => {
      this.lost(w, worker, `did not answer within ${this.jobTimeoutMs / 1000} s`);
      void worker.terminate();
    }, this.jobTimeoutMs);
    worker.postMessage(p.job);
  }

  run(job: ScanJobInput): Promise<ScanReply & { ok: true }> {
    if (this.closed) return Promise.reject(new DataError('scan workers: the pool is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const p: Pending = { job: { ...job, id } as ScanJob, resolve, reject, worker: -1, sends: 0 };
      this.pending.set(id, p);
      this.send(p, 'every worker has stopped');
    });
  }

  private settle(reply: ScanReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.drop(p);
    this.slots[p.worker]!.inFlight--;
    if (reply.ok) p.resolve(reply);
    else p.reject(new DataError(reply.message));
  }

  /** Forgets a job about to be settled: no more watchdog, no more resends. */
  private drop(p: Pending): void {
    clearTimeout(p.watchdog);
    this.pending.delete(p.job.id);
  }

  /** Worker w died ('error' then 'exit' both come here; the second is ignored). */
  private lost(w: number, worker: Worker, why: string): void {
    const slot = this.slots[w]!;
    if (slot.worker !== worker) return;
    slot.worker = null;
    slot.inFlight = 0;
    const orphans = [...this.pending.values()].filter((p) => p.worker === w);
    if (this.closed) {
      for (const p of orphans) {
        this.drop(p);
        p.reject(new DataError('scan workers: the pool is closed'));
      }
      return;
    }
    if (this.respawns < MAX_RESPAWNS) {
      this.respawns++;
      this.spawn(w);
    }
    const reason = `scan worker ${w} ${why}`;
    for (const p of orphans) {
      if (p.sends >= 2) {
        this.drop(p);
        p.reject(new ScanWorkerError(`${reason} while ${describeJob(p.job)}, twice`));
      } else {
        this.send(p, reason);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker?.terminate()));
  }
}
