/**
 * `reef pretrain`: self-distillation on a folder of CT volumes, with a progress bar, metrics.jsonl,
 * a loss picture, atomic checkpoints (every K steps, at the end, and on SIGINT/SIGTERM), `--resume`,
 * and the student backbone exported as MONAI-format safetensors for `reef features`.
 *
 * Scans are read and the next step's crops cut in worker threads (train/scan-loader.ts) while the
 * GPU runs the current step. A step's data depends only on (seed, step), so a resumed run continues
 * exactly where an uninterrupted one would be.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SingleBar } from 'cli-progress';
import { isDicomFolder } from '../data/dicom-folder.js';
import { sampleCtPath } from '../data/sample-ct.js';
import { fmtBytes, ReefError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { writeFileAtomic, writeSafetensorsFile } from '../io/node-file.js';
import { MetricsWriter, RunDirectory } from '../io/run-dir.js';
import { readHeader, readTensor, type WriteTensor } from '../io/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';
import { describeConfig } from '../models/swin3d/config.js';
import { DinoTrainer, type DinoBatch, type DinoStepResult } from '../train/dino-trainer.js';
import { lossPlotSvg, seriesFromMetrics } from '../train/loss-plot.js';
import { ScanLoader } from '../train/scan-loader.js';
import { recipe, recipeModel, recipeRun, type PretrainRecipe } from '../train/pretrain-recipe.js';

export interface PretrainOptions {
  /** A folder of .nii/.nii.gz files and DICOM series sub-folders, one DICOM series folder, a text file listing volumes, `sample` (the Debian head CT) or `phantom`. */
  data?: string;
  preset: string;
  steps: number;
  out?: string;
  resume?: string;
  seed: number;
  checkpointEvery: number;
  /** Recipe values replacing the preset's (each a flag). */
  overrides: Partial<PretrainRecipe>;
  /** Refresh loss.svg every this many steps. */
  plotEvery?: number;
  log?: (line: string) => void;
  /** Stop after this many steps of this invocation (tests; the run's total stays `steps`). */
  stopAfter?: number;
  /** Install SIGINT/SIGTERM handlers that checkpoint before exiting (the CLI does). */
  handleSignals?: boolean;
  /** Show the progress bar on stderr (default true). */
  progress?: boolean;
  /** Worker threads that read scans and cut crops; 0: on the main thread. Default: cores − 1, at most 4. */
  loaderWorkers?: number;
  /** Memory budget for resampled scans (least recently used out); default 4 GiB. */
  dataCacheBytes?: number;
  /** Keep resampled scans in this folder across passes and runs (prepared-cache.ts); default none. */
  preparedCache?: string;
  /** The loader's worker script; default the bundled scan-worker.mjs beside this module (none when run from source). */
  scanWorkerScript?: URL | null;
  /** Called after each step is recorded (and checkpointed, when due): progress for an embedding app, or a test's cue. */
  onStep?: (step: number) => void | Promise<void>;
}

/** The worker entry built beside the CLI bundle (scripts/build.mjs), or null when running from source. */
function bundledScanWorker(): URL | null {
  const url = new URL('./scan-worker.mjs', import.meta.url);
  return url.protocol === 'file:' && existsSync(fileURLToPath(url)) ? url : null;
}

/** What a run directory records about how it was started; `--resume` reads it back. */
interface RunConfig {
  preset: string;
  recipe: PretrainRecipe;
  steps: number;
  seed: number;
  data: string;
  volumes: string[];
}

interface RunState {
  step: number;
  trainer: ReturnType<DinoTrainer['stateMeta']>;
  elapsedMs: number;
}

const METRIC_TERMS = ['loss', 'dino', 'ibot', 'koleo'];

export async function runPretrain(rt: Runtime, o: PretrainOptions): Promise<number> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const runRoot = resolve(o.resume ?? o.out ?? fail('give --out RUN/ (or --resume RUN/)'));
  const run = new RunDirectory(runRoot);
  let config: RunConfig;
  let start = 0;
  let elapsedMs = 0;
  let restore: ((trainer: DinoTrainer) => Promise<void>) | null = null;
  if (o.resume) {
    config = await readConfig(runRoot);
    if (o.data !== undefined && o.data !== config.data) log(`--data ${o.data} ignored: a resumed run reads the scans it started with (${join(runRoot, 'scans.json')})`);
    if (o.steps > 0) config.steps = o.steps;
    const ref = await run.latest();
    if (ref) {
      const ck = await run.loadCheckpoint<RunState>(ref);
      start = ck.state.step;
      elapsedMs = ck.state.elapsedMs;
      restore = async (trainer: DinoTrainer) => {
        try {
          const header = await readHeader(ck.tensors, ck.tensors.path);
          const values = new Map<string, Float32Array>();
          for (const name of header.tensors.keys()) values.set(name, (await readTensor(ck.tensors, header, name)).data as Float32Array);
          trainer.loadState(ck.state.trainer, (n) => values.get(n));
        } finally {
          await ck.tensors.close();
        }
      };
      log(`resuming ${runRoot} from step ${start} (${ref.dir})`);
    } else {
      log(`${runRoot} has no checkpoint yet: starting it from step 0`);
    }
    await run.truncateMetrics(start);
  } else {
    if (await run.latest()) throw new ReefError(`${runRoot} already holds a run with checkpoints: continue it with --resume ${runRoot}, or give a new --out`);
    const r = { ...recipe(o.preset), ...o.overrides };
    const data = o.data ?? 'sample';
    config = { preset: o.preset, recipe: r, steps: o.steps, seed: o.seed, data, volumes: await listVolumes(data, log) };
    await run.create();
    await writeFileAtomic(join(runRoot, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    await run.truncateMetrics(0);
  }
  const r = config.recipe;
  const model = recipeModel(r);
  const { spec, options: trainerOptions } = recipeRun(r, config.steps, config.seed); // refuses bad values before any reading
  const script = o.scanWorkerScript === undefined ? bundledScanWorker() : o.scanWorkerScript;
  const workers = script ? (o.loaderWorkers ?? Math.min(4, Math.max(1, availableParallelism() - 1))) : 0;
  // A new run fixes its usable scans in scans.json; a resumed one opens that list, so that a scan
  // lost since is passed over in place instead of shifting every later step's scans.
  const scansPath = join(runRoot, 'scans.json');
  const saved = o.resume ? await readScanList(scansPath) : null;
  const loader = await ScanLoader.open(saved ?? config.volumes, { minSide: r.globalSide, workerScript: workers > 0 ? script : null, workers, maxBytes: o.dataCacheBytes, keepListed: saved !== null, lazy: saved !== null, ...(o.preparedCache ? { cacheDir: resolve(o.preparedCache) } : {}), log });
  try {
    if (!saved) await writeFileAtomic(scansPath, `${JSON.stringify({ usable: loader.usable, skipped: loader.skipped }, null, 2)}\n`);
    return await train(loader);
  } finally {
    await loader.close();
  }

  async function train(loader: ScanLoader): Promise<number> {
    const accumulate = spec.accumulate ?? 1;
    const where = workers > 0 ? `by ${workers} worker thread(s)` : 'on the main thread';
    if (saved) log(`data: the run's ${loader.usable.length} scan(s) (${scansPath}), read and cropped ${where} as steps need them (memory budget ${fmtBytes(loader.maxBytes)})`);
    else log(`data: ${loader.usable.length} scan(s) read and cropped ${where}, ${fmtBytes(loader.cachedBytes)} of resampled scans in memory (budget ${fmtBytes(loader.maxBytes)})`);
    log(`pretraining ${describeConfig(model)} (${config.preset}) on ${loader.usable.length} volume(s), ${config.steps} steps of ${accumulate > 1 ? `${accumulate} × ` : ''}${r.batch} × (2 × ${r.globalSide}³ + ${r.locals} × ${r.localSide}³), ${rt.describe()}`);
    const trainer = new DinoTrainer(rt, trainerOptions);
    log(`activations ${trainer.activations}${trainer.lossScaler ? ` (f32 master weights, loss scale from ${trainer.lossScaler.scale})` : ''}`);
    const metrics = new MetricsWriter(run.metricsPath);
    let stopSignal: string | null = null;
    const onSignal = (name: string) => () => {
      if (stopSignal) process.exit(130); // a second signal: leave at once (the last checkpoint stands)
      stopSignal = name;
      log(`\n${name}: finishing this step, then writing a checkpoint`);
    };
    const sigregOn = (r.sigregWeight ?? 0) > 0;
    const handlers = o.handleSignals ? ([['SIGINT', onSignal('SIGINT')], ['SIGTERM', onSignal('SIGTERM')]] as const) : [];
    for (const [sig, h] of handlers) process.on(sig, h);
    const bar = o.progress === false ? null : new SingleBar({
      noTTYOutput: true,
      format: `step {value}/{total} [{bar}] loss {loss} (dino {dino} ibot {ibot} koleo {koleo}${sigregOn ? ' sigreg {sigreg}' : ''}) | lr {lr} | {rate} crops/s | GPU {mem} | ETA {eta_formatted}`,
      hideCursor: true,
      notTTYSchedule: 5000,
      etaBuffer: 20,
    });
    let lastSaved = start;
    const save = async (step: number) => {
      await run.saveCheckpoint(step, await hostTensors(trainer.stateTensors()), { step, trainer: trainer.stateMeta(), elapsedMs } satisfies RunState);
      lastSaved = step;
    };
    // The run's records so far (cut back to `start` above), kept in memory for the plot and summary.
    const records = await run.readMetrics();
    const plot = async () => {
      await writeFileAtomic(join(runRoot, 'loss.svg'), lossPlotSvg(seriesFromMetrics(records, sigregOn ? [...METRIC_TERMS, 'sigreg'] : METRIC_TERMS), { title: `reef pretrain ${config.preset}: loss per step` }));
    };
    let code = 0;
    let finished = start;
    const crops = r.batch * accumulate * (2 + r.locals);
    try {
      if (restore) await restore(trainer);
      bar?.start(config.steps, start, { loss: '-', dino: '-', ibot: '-', koleo: '-', sigreg: '-', lr: '-', rate: '-', mem: '-' });
      const stopAt = Math.min(config.steps, o.stopAfter !== undefined ? start + o.stopAfter : Infinity);
      // A step's crops are asked for one step ahead (cut while the GPU runs) and its scans two ahead.
      const ahead = (step: number): Promise<DinoBatch[]> | null => {
        if (step >= stopAt) return null;
        const p = loader.batches(step, spec);
        p.catch(() => {}); // awaited below; a run stopped by a signal may never await it
        if (step + 1 < stopAt) loader.prefetch(step + 1, spec);
        return p;
      };
      let next = ahead(start);
      for (let step = start; step < stopAt; step++) {
        const t0 = performance.now();
        let batch: DinoBatch[];
        try {
          batch = await next!;
        } catch (e) {
          // The data failed (no scan left, a worker lost twice): the trainer is whole, keep its steps.
          if (finished !== lastSaved) await save(finished);
          throw e;
        }
        const pending = trainer.step(step, batch);
        next = ahead(step + 1);
        const res = await pending;
        const ms = performance.now() - t0;
        elapsedMs += ms;
        const rec = record(step + 1, res, ms, crops, rt);
        records.push(rec);
        await metrics.append(rec);
        if (!res.applied) log(`\nstep ${step + 1}: non-finite ${res.nonFinite?.join(', ')}: step skipped${trainer.lossScaler ? ` (loss scale ${res.lossScale} → ${trainer.lossScaler.scale})` : ''}`);
        bar?.update(step + 1, {
          loss: res.loss.toFixed(4),
          dino: res.dino.toFixed(3),
          ibot: res.ibot.toFixed(3),
          koleo: res.koleo.toFixed(3),
          sigreg: res.sigreg.toFixed(3),
          lr: res.lr.toExponential(2),
          rate: ((crops * 1000) / ms).toFixed(2),
          mem: fmtBytes(rt.memory().peak),
        });
        const done = step + 1;
        finished = done;
        if (done % (o.plotEvery ?? 10) === 0) await plot();
        if (stopSignal) {
          await save(done);
          code = stopSignal === 'SIGINT' ? 130 : 143;
          break;
        }
        if (o.checkpointEvery > 0 && done % o.checkpointEvery === 0) await save(done);
        await o.onStep?.(done);
      }
      bar?.stop();
      if (lastSaved !== finished) await save(finished);
      await plot();
      if (finished >= config.steps) {
        const exportPath = join(runRoot, 'backbone.safetensors');
        await writeSafetensorsFile(exportPath, await hostTensors(trainer.student.encoder), { format: 'pt', source: 'reef pretrain', preset: config.preset });
        log(`student backbone (MONAI names, for reef features): ${exportPath}`);
      }
      const summary = runSummary(records, r.prototypes);
      if (summary) log(summary);
    } finally {
      bar?.stop();
      for (const [sig, h] of handlers) process.off(sig, h);
      trainer.dispose();
    }
    return code;
  }
}

/** The usable scans a run fixed at its start (null for a run directory from before scans.json). */
async function readScanList(path: string): Promise<string[] | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ReefError(`${path}: cannot read the run's list of scans (${(e as Error).message})`);
  }
  let list: unknown;
  try {
    list = (JSON.parse(text) as { usable?: unknown }).usable;
  } catch (e) {
    throw new ReefError(`${path}: not JSON (${(e as Error).message}); is the run directory damaged?`);
  }
  if (!Array.isArray(list) || list.some((p) => typeof p !== 'string')) throw new ReefError(`${path}: no list of usable scans; is the run directory damaged?`);
  return list as string[];
}

/** f32 host copies of GPU tensors, by name, for a safetensors file. */
async function hostTensors(entries: Iterable<[string, Tensor]>): Promise<WriteTensor[]> {
  const out: WriteTensor[] = [];
  for (const [name, t] of entries) out.push({ name, dtype: 'F32', shape: [...t.shape], data: await t.read() });
  return out;
}

function fail(message: string): never {
  throw new ReefError(message);
}

function record(step: number, r: DinoStepResult, ms: number, crops: number, rt: Runtime): Record<string, unknown> {
  return {
    step,
    loss: r.loss,
    dino: r.dino,
    ibot: r.ibot,
    koleo: r.koleo,
    sigreg: r.sigreg,
    lr: r.lr,
    weight_decay: r.weightDecay,
    teacher_temp: r.teacherTemp,
    teacher_momentum: r.teacherMomentum,
    grad_norm: r.gradNorm,
    teacher_entropy: r.teacherEntropy,
    teacher_argmax_unique: r.teacherArgmaxUnique,
    teacher_argmax: r.teacherArgmax,
    masked_tokens: r.maskedTokens,
    loss_scale: r.lossScale,
    skipped: !r.applied,
    ...(r.nonFinite ? { non_finite: r.nonFinite } : {}),
    step_ms: Math.round(ms),
    crops_per_s: (crops * 1000) / ms,
    gpu_peak_bytes: rt.memory().peak,
    // What the pool holds from the device (live + free lists): what the process really uses.
    gpu_allocated_bytes: rt.memory().allocated,
  };
}

/**
 * What says whether it learnt: the mean DINO loss of the last 20 steps against the first 20 (halves
 * of a shorter run, so the two never overlap), and over the last 100 the teacher's mean entropy
 * (against ln K: uniform) and its distinct argmax prototypes (1: collapsed).
 */
export function runSummary(records: readonly Record<string, unknown>[], prototypes: number): string | null {
  if (records.length === 0) return null;
  const mean = (rs: readonly Record<string, unknown>[], k: string) => rs.reduce((s, r) => s + Number(r[k]), 0) / Math.max(rs.length, 1);
  const n = Math.max(1, Math.min(20, Math.floor(records.length / 2)));
  const head = records.slice(0, n);
  const tail = records.slice(-n);
  const last = records.slice(-100);
  const distinct = new Set(last.flatMap((r) => (Array.isArray(r.teacher_argmax) ? (r.teacher_argmax as number[]) : [])));
  return (
    `${records.length} steps: mean DINO loss first ${n} ${mean(head, 'dino').toFixed(4)}, last ${n} ${mean(tail, 'dino').toFixed(4)} ` +
    `(${(mean(tail, 'dino') / mean(head, 'dino')).toFixed(3)}×); last ${last.length}: teacher entropy ${mean(last, 'teacher_entropy').toFixed(3)} nats ` +
    `(${(mean(last, 'teacher_entropy') / Math.log(prototypes)).toFixed(3)} ln K), ${distinct.size} distinct argmax prototypes`
  );
}

async function readConfig(root: string): Promise<RunConfig> {
  const path = join(root, 'config.json');
  try {
    return JSON.parse(await readFile(path, 'utf8')) as RunConfig;
  } catch (e) {
    throw new ReefError(`${path}: cannot resume (${(e as Error).message}); is ${root} a reef pretrain run directory?`);
  }
}

/**
 * The volumes named by --data: a folder's .nii/.nii.gz files and its sub-folders that hold a DICOM
 * series (or the folder itself when it is one series), or a text file listing such paths;
 * `sample` and `phantom` are resolved when loading.
 */
async function listVolumes(data: string, log: (l: string) => void): Promise<string[]> {
  if (data === 'phantom') return ['phantom:1', 'phantom:2'];
  if (data === 'sample') return [await sampleCtPath({ log })];
  let info;
  try {
    info = await stat(data);
  } catch {
    throw new ReefError(`--data ${data}: no such file or folder`);
  }
  let paths: string[];
  if (info.isDirectory() && (await isDicomFolder(data))) {
    paths = [data];
  } else if (info.isDirectory()) {
    paths = [];
    for (const e of (await readdir(data, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(data, e.name);
      if (e.isFile() && /\.nii(\.gz)?$/i.test(e.name)) paths.push(path);
      else if (e.isDirectory() && (await isDicomFolder(path))) paths.push(path);
    }
  } else {
    paths = (await readFile(data, 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  }
  if (paths.length === 0) throw new ReefError(`--data ${data}: no NIfTI volumes (.nii, .nii.gz) or DICOM series folders found`);
  return paths.map((p) => resolve(p));
}
