/**
 * The self-distillation step end to end on a tiny CoralBay encoder and the synthetic phantom:
 * losses finite and teacher distributions proper; a run stopped after step k and restored from the
 * saved tensors and counters gives bitwise the losses of a run that never stopped; the teacher starts
 * as the student and follows it by EMA.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { makePhantom } from '../../src/data/phantom';
import { prepareVolume } from '../../src/data/volume-cache';
import type { CropSource } from '../../src/data/crops';
import { preset } from '../../src/models/swin3d/config';
import { DinoTrainer, type DinoTrainerOptions, type DinoStepResult } from '../../src/train/dino-trainer';
import { makeBatch, type BatchSpec } from '../../src/train/pretrain-batch';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
let sources: CropSource[];
beforeAll(async () => {
  rt = await testRuntime();
  sources = [1, 2].map((seed) => prepareVolume(makePhantom({ shape: [48, 48, 40], spacing: [1.5, 1.5, 1.5], seed })));
});

const OPTS: DinoTrainerOptions = {
  model: { ...preset('coralbay-tiny'), featureSize: 12 },
  batch: 2,
  globals: 2,
  locals: 2,
  globalSide: 32,
  localSide: 16,
  prototypes: 64,
  headHidden: 32,
  bottleneck: 16,
  studentTemp: 0.1,
  centerMomentum: 0.9,
  centering: 'centre',
  ibotWeight: 1,
  koleoWeight: 0.1,
  clip: 3,
  clipMode: 'global',
  schedules: { epochs: 2, epochSteps: 2, batchSize: 2, baseLr: 0.1, warmupEpochs: 1, warmupTeacherTempEpochs: 1 },
  seed: 7,
};
const SPEC: BatchSpec = { batch: 2, seed: 11, crops: { nGlobal: 2, nLocal: 2, globalSide: 32, localSide: 16 } };
const terms = (r: DinoStepResult) => [r.loss, r.dino, r.ibot, r.koleo, r.gradNorm];

describe('DINO + iBOT + KoLeo step on a tiny CoralBay encoder', () => {
  let straight: DinoStepResult[] = [];

  it('runs steps with finite losses; the teacher distributions are proper', async () => {
    const before = rt.memory().inUse;
    const trainer = new DinoTrainer(rt, OPTS);
    straight = [];
    let held = 0;
    for (let step = 0; step < 3; step++) {
      straight.push(await trainer.step(step, makeBatch(sources, step, SPEC)));
      // The clipper and optimizer allocate their buffers in the first step; nothing grows after it.
      await rt.sync();
      if (step === 0) held = rt.memory().inUse;
    }
    console.log(straight.map((r) => `step ${r.step}: loss ${r.loss.toFixed(5)} dino ${r.dino.toFixed(5)} ibot ${r.ibot.toFixed(5)} koleo ${r.koleo.toFixed(5)} |g| ${r.gradNorm.toFixed(4)} H ${r.teacherEntropy.toFixed(3)} masked ${r.maskedTokens}`).join('\n'));
    for (const r of straight) {
      expect(r.applied).toBe(true);
      for (const v of terms(r)) expect(Number.isFinite(v)).toBe(true);
      expect(r.teacherEntropy).toBeGreaterThan(0);
      expect(r.teacherEntropy).toBeLessThanOrEqual(Math.log(64) + 1e-4);
      expect(r.loss).toBeCloseTo(r.dino + r.ibot + 0.1 * r.koleo, 5);
    }
    expect(straight.some((r) => r.maskedTokens > 0)).toBe(true);
    expect(rt.memory().inUse).toBe(held);
    trainer.dispose();
    await rt.sync();
    expect(rt.memory().inUse, JSON.stringify([...rt.pool.liveByOwner()])).toBe(before);
  });

  it('stopped after step 1 and restored from its saved state, it gives bitwise the same losses', async () => {
    const first = new DinoTrainer(rt, OPTS);
    for (let step = 0; step < 2; step++) await first.step(step, makeBatch(sources, step, SPEC));
    const saved = new Map<string, Float32Array>();
    for (const [name, t] of first.stateTensors()) saved.set(name, await t.read());
    const meta = JSON.parse(JSON.stringify(first.stateMeta())) as ReturnType<DinoTrainer['stateMeta']>;
    first.dispose();

    const resumed = new DinoTrainer(rt, { ...OPTS, seed: 99 }); // different init: everything must come from the state
    resumed.loadState(meta, (n) => saved.get(n));
    const r = await resumed.step(2, makeBatch(sources, 2, SPEC));
    resumed.dispose();
    expect(terms(r)).toEqual(terms(straight[2]!));
  });

  it('two micro-batches of one image (gradient accumulation) make the step of one batch of two', async () => {
    // KoLeo off: its neighbours are the only thing that stays within a micro-batch (with centring).
    const whole = makeBatch(sources, 0, SPEC);
    const g = 32 ** 3;
    const l = 16 ** 3;
    // View-major rows v·B + b: micro-batch b takes rows b and 2 + b of each kind.
    const micro = [0, 1].map((b) => ({
      globals: Float32Array.from([...whole.globals.subarray(b * g, (b + 1) * g), ...whole.globals.subarray((2 + b) * g, (3 + b) * g)]),
      locals: Float32Array.from([...whole.locals.subarray(b * l, (b + 1) * l), ...whole.locals.subarray((2 + b) * l, (3 + b) * l)]),
      masks: [whole.masks[b]!, whole.masks[2 + b]!],
    }));
    const one = new DinoTrainer(rt, { ...OPTS, koleoWeight: 0 });
    const acc = new DinoTrainer(rt, { ...OPTS, koleoWeight: 0, batch: 1, accumulate: 2 });
    await expect(acc.step(0, micro[0]!)).rejects.toThrow(/1 micro-batches given, the trainer accumulates 2/);
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);
    // The same crops twice: the second step sees the updated weights, the EMA teacher and the centres.
    for (let step = 0; step < 2; step++) {
      const a = await one.step(step, whole);
      const b = await acc.step(step, micro);
      for (const [x, y] of [[b.loss, a.loss], [b.dino, a.dino], [b.ibot, a.ibot], [b.gradNorm, a.gradNorm], [b.teacherEntropy, a.teacherEntropy]] as const) {
        expect(rel(x, y), `step ${step}: ${x} vs ${y}`).toBeLessThan(2e-5);
      }
      expect(b.maskedTokens).toBe(a.maskedTokens);
    }
    const pa = new Map(one.parameters);
    for (const [name, t] of acc.parameters) {
      const [x, y] = [await t.read(), await pa.get(name)!.read()];
      let err = 0;
      let scale = 0;
      x.forEach((v, i) => {
        err = Math.max(err, Math.abs(v - y[i]!));
        scale = Math.max(scale, Math.abs(y[i]!));
      });
      expect(err, name).toBeLessThanOrEqual(1e-5 * Math.max(scale, 1));
    }
    one.dispose();
    acc.dispose();
  });

  it('adds SIGReg on the global embeddings when asked, with slices keyed by (seed, step)', async () => {
    const opts = { ...OPTS, sigregWeight: 0.5, sigregSlices: 64 };
    const a = new DinoTrainer(rt, opts);
    const ra = await a.step(0, makeBatch(sources, 0, SPEC));
    a.dispose();
    expect(ra.sigreg).toBeGreaterThan(0);
    expect(ra.loss).toBeCloseTo(ra.dino + ra.ibot + 0.1 * ra.koleo + 0.5 * ra.sigreg, 5);
    // Off, the other terms are those of the plain step 0; on again, bitwise the same step.
    expect([ra.dino, ra.ibot, ra.koleo]).toEqual([straight[0]!.dino, straight[0]!.ibot, straight[0]!.koleo]);
    const b = new DinoTrainer(rt, opts);
    const rb = await b.step(0, makeBatch(sources, 0, SPEC));
    b.dispose();
    expect(terms(rb).concat(rb.sigreg)).toEqual(terms(ra).concat(ra.sigreg));
  });
});
