/**
 * A training run's directory under Node:
 *
 *   RUN/checkpoints/step-00000120/tensors.safetensors   every tensor (weights, moments, centres)
 *   RUN/checkpoints/step-00000120/state.json            every scalar (step, RNG states, schedules)
 *   RUN/latest.json                                      which checkpoint is complete, written last
 *   RUN/metrics.jsonl                                    one JSON line per step
 *
 * Each file is written atomically (temporary file, fsync, rename, fsync of the directory), and
 * latest.json only names a checkpoint once both of its files are durable: a crash at any moment
 * leaves the previous checkpoint readable. Older checkpoints beyond `keep` are removed afterwards.
 */
import { appendFile, mkdir, readdir, readFile, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { ReefError } from '../gpu/errors.js';
import type { WriteTensor } from './safetensors.js';
import { fileSource, syncDirectory, writeFileAtomic, writeSafetensorsFile, type FileSource } from './node-file.js';

export interface CheckpointRef {
  step: number;
  /** Directory of the checkpoint, relative to the run directory. */
  dir: string;
}

export interface LoadedCheckpoint<S> {
  step: number;
  state: S;
  /** The tensors file, read on demand (the caller closes it). */
  tensors: FileSource;
}

const stepDir = (step: number) => join('checkpoints', `step-${String(step).padStart(8, '0')}`);

export class RunDirectory {
  constructor(readonly root: string) {}

  get metricsPath(): string {
    return join(this.root, 'metrics.jsonl');
  }

  async create(): Promise<void> {
    await mkdir(join(this.root, 'checkpoints'), { recursive: true });
  }

  /** Writes one checkpoint and then points latest.json at it; keeps the newest `keep`. */
  async saveCheckpoint(step: number, tensors: readonly WriteTensor[], state: unknown, keep = 2): Promise<CheckpointRef> {
    const ref: CheckpointRef = { step, dir: stepDir(step) };
    const dir = join(this.root, ref.dir);
    await mkdir(dir, { recursive: true });
    await writeSafetensorsFile(join(dir, 'tensors.safetensors'), tensors, { step: String(step) });
    await writeFileAtomic(join(dir, 'state.json'), JSON.stringify(state));
    await syncDirectory(join(this.root, 'checkpoints'));
    await writeFileAtomic(join(this.root, 'latest.json'), JSON.stringify(ref));
    await this.prune(keep, step);
    return ref;
  }

  /** The checkpoint latest.json names, or null for a run that has none yet. */
  async latest(): Promise<CheckpointRef | null> {
    const path = join(this.root, 'latest.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    let ref: CheckpointRef;
    try {
      ref = JSON.parse(text) as CheckpointRef;
    } catch {
      throw new ReefError(`${path}: not valid JSON`);
    }
    if (!Number.isInteger(ref.step) || typeof ref.dir !== 'string') throw new ReefError(`${path}: expected {"step", "dir"}, got ${text.slice(0, 200)}`);
    return ref;
  }

  async loadCheckpoint<S>(ref: CheckpointRef): Promise<LoadedCheckpoint<S>> {
    const dir = join(this.root, ref.dir);
    const statePath = join(dir, 'state.json');
    let state: S;
    try {
      state = JSON.parse(await readFile(statePath, 'utf8')) as S;
    } catch (e) {
      throw new ReefError(`${statePath}: cannot read the checkpoint's state (${(e as Error).message})`);
    }
    return { step: ref.step, state, tensors: await fileSource(join(dir, 'tensors.safetensors')) };
  }

  /** Removes checkpoints older than the newest `keep` (and unfinished ones from a crash). */
  private async prune(keep: number, newest: number): Promise<void> {
    const root = join(this.root, 'checkpoints');
    const steps = (await readdir(root))
      .map((name) => /^step-(\d+)$/.exec(name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .filter((s) => s <= newest)
      .sort((a, b) => b - a);
    for (const s of steps.slice(Math.max(1, keep))) await rm(join(this.root, stepDir(s)), { recursive: true, force: true });
  }

  /**
   * Cuts metrics.jsonl back to the records with step ≤ `step` (a resumed run rewrites what came
   * after its checkpoint). A torn last line from a crash is dropped too.
   */
  async truncateMetrics(step: number): Promise<void> {
    const path = this.metricsPath;
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const total = Buffer.byteLength(text, 'utf8');
    let keepBytes = 0;
    for (const line of text.split('\n')) {
      const end = keepBytes + Buffer.byteLength(line, 'utf8') + 1;
      if (line.trim() === '') break;
      let rec: { step?: unknown };
      try {
        rec = JSON.parse(line) as { step?: unknown };
      } catch {
        break;
      }
      if (typeof rec.step !== 'number' || rec.step > step) break;
      keepBytes = Math.min(end, total);
    }
    if ((await stat(path)).size !== keepBytes) await truncate(path, keepBytes);
  }

  /** Every record of metrics.jsonl (torn lines skipped). */
  async readMetrics(): Promise<Record<string, unknown>[]> {
    let text: string;
    try {
      text = await readFile(this.metricsPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: Record<string, unknown>[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // A line cut by a crash.
      }
    }
    return out;
  }
}

/** Appends JSON lines to one file, in order, without holding it open between steps. */
export class MetricsWriter {
  private pending: Promise<void> = Promise.resolve();
  constructor(readonly path: string) {}

  append(record: Record<string, unknown>): Promise<void> {
    const line = `${JSON.stringify(record)}\n`;
    this.pending = this.pending.then(() => appendFile(this.path, line));
    return this.pending;
  }
}
