/**
 * The `tiny` DINO pretraining step on the sample head CT, as `reef pretrain --preset tiny` runs it
 * (same recipe, batches, trainer options), timed per step. With several named configurations (e.g.
 * a kernel variant forced one way or the other) one trainer runs per configuration and their steps
 * alternate, so a drifting, shared machine hits each alike; the report is per-configuration medians.
 * `profileStep` adds a per-kernel GPU time table (timestamp queries) of one step after the warm-up.
 */
import type { Runtime } from '../src/gpu/runtime.js';
import { loadNifti } from '../src/data/nifti-file.js';
import { sampleCtPath } from '../src/data/sample-ct.js';
import { prepareVolume } from '../src/data/volume-cache.js';
import type { CropSource } from '../src/data/crops.js';
import { DinoTrainer, type DinoTrainerOptions } from '../src/train/dino-trainer.js';
import { makeBatches, type BatchSpec } from '../src/train/pretrain-batch.js';
import { recipe, recipeRun } from '../src/train/pretrain-recipe.js';
import { median } from './timing.js';
import { formatProfile } from '../src/gpu/profiler.js';

export interface TinyStepConfig {
  name: string;
  /** Called before each of this configuration's steps (set a variant override, say). */
  before?: () => void;
  /** Trainer options over the recipe's (precision, say). */
  options?: Partial<DinoTrainerOptions>;
}

export interface TinyStepOptions {
  steps: number;
  configs: TinyStepConfig[];
  /** Schedules as for a run of this many steps (default 300). */
  runSteps?: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface TinyStepResult {
  name: string;
  /** Wall time of each step (data for the next step is cut while the GPU runs, as in `reef pretrain`). */
  stepMs: number[];
  /** Median over steps 2… (the first compiles pipelines). */
  medianMs: number;
  losses: number[];
}

export async function loadTinySources(log: (l: string) => void = () => {}): Promise<CropSource[]> {
  return [prepareVolume(await loadNifti(await sampleCtPath({ log })))];
}

export function tinySetup(steps: number, seed = 0): { spec: BatchSpec; options: DinoTrainerOptions } {
  return recipeRun(recipe('tiny'), steps, seed);
}


/** Steps of each configuration, alternating (config 1 step 1, config 2 step 1, …). */
export async function runTinySteps(rt: Runtime, o: TinyStepOptions): Promise<TinyStepResult[]> {
  const log = o.log ?? console.log;
  const sources = await loadTinySources(log);
  const { spec, options } = tinySetup(o.runSteps ?? 300, o.seed ?? 0);
  const trainers = o.configs.map((c) => new DinoTrainer(rt, { ...options, ...c.options }));
  const results: TinyStepResult[] = o.configs.map((c) => ({ name: c.name, stepMs: [], medianMs: NaN, losses: [] }));
  try {
    for (let step = 0; step < o.steps; step++) {
      const batch = makeBatches(sources, step, spec);
      for (const [i, c] of o.configs.entries()) {
        c.before?.();
        await rt.sync();
        const t0 = performance.now();
        const res = await trainers[i]!.step(step, batch);
        const ms = performance.now() - t0;
        results[i]!.stepMs.push(ms);
        results[i]!.losses.push(res.loss);
        log(`${c.name} step ${step + 1}: ${ms.toFixed(0)} ms, loss ${res.loss.toFixed(6)}`);
      }
    }
  } finally {
    for (const t of trainers) t.dispose();
  }
  for (const r of results) r.medianMs = median(r.stepMs.slice(1));
  return results;
}

/**
 * A trainer on the sample CT that runs one step per call (batches cut just before, untimed), for
 * A/B runs that alternate two builds of reef in one process (kernels-bench/tiny-step-ab.mjs).
 */
export async function tinyStepper(rt: Runtime, o: { runSteps?: number; seed?: number } = {}): Promise<{ step: () => Promise<{ ms: number; loss: number }>; dispose: () => void }> {
  const sources = await loadTinySources();
  const { spec, options } = tinySetup(o.runSteps ?? 300, o.seed ?? 0);
  const trainer = new DinoTrainer(rt, options);
  let next = 0;
  return {
    step: async () => {
      const batch = makeBatches(sources, next, spec);
      await rt.sync();
      const t0 = performance.now();
      const res = await trainer.step(next++, batch);
      return { ms: performance.now() - t0, loss: res.loss };
    },
    dispose: () => trainer.dispose(),
  };
}

/** Per-kernel GPU time table of step `warmup + 1` (after `warmup` untimed steps), and dispatch counts. */
export async function profileTinyStep(rt: Runtime, o: { warmup?: number; before?: () => void; log?: (l: string) => void } = {}): Promise<string> {
  if (!rt.profiler) throw new Error('profileTinyStep needs a runtime created with { profile: true }');
  const sources = await loadTinySources(o.log);
  const { spec, options } = tinySetup(300);
  const trainer = new DinoTrainer(rt, options);
  try {
    const warmup = o.warmup ?? 1;
    for (let step = 0; step < warmup; step++) {
      o.before?.();
      await trainer.step(step, makeBatches(sources, step, spec));
    }
    await rt.sync();
    await rt.profiler.reset();
    o.before?.();
    const batch = makeBatches(sources, warmup, spec);
    const t0 = performance.now();
    await trainer.step(warmup, batch);
    const ms = performance.now() - t0;
    const rows = await rt.profile();
    const dispatches = rows.reduce((n, r) => n + r.calls, 0);
    return `${formatProfile(rows, rt.profiler.timed)}\nstep wall time ${ms.toFixed(0)} ms (profiled: one pass per dispatch), ${dispatches} dispatches`;
  } finally {
    trainer.dispose();
  }
}
