/**
 * AdamW with parameter groups against a float64 AdamW, the weight-decay rules, a frozen last layer,
 * GPU-computed clip multipliers (and skipping a non-finite step on the GPU), and checkpoint resume
 * giving bitwise the same parameters and moments as an uninterrupted run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../../src/gpu/runtime';
import { tensor, type Tensor } from '../../src/index';
import { AdamW, DECAY_RULES, dinoParamGroups, type AdamWStepOptions, type ParamGroup } from '../../src/train/adamw';
import { GradClipper } from '../../src/train/grad-clip';
import { DynamicLossScaler } from '../../src/train/loss-scaler';
import { DinoSchedules } from '../../src/train/schedules';
import { makeRng, type Rng } from '../ref/array';
import { expectRel, printErrorTable } from '../support/compare';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});
afterAll(() => printErrorTable('AdamW'));

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** float64 AdamW state of one parameter. */
interface RefParam {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
  t: number;
}

function refStep(s: RefParam, g: ArrayLike<number>, o: { lr: number; wd: number; b1: number; b2: number; eps: number; scale: number }): void {
  s.t++;
  const bc1 = 1 - o.b1 ** s.t;
  const bc2 = 1 - o.b2 ** s.t;
  for (let i = 0; i < s.p.length; i++) {
    const gi = g[i]! * o.scale;
    s.m[i] = o.b1 * s.m[i]! + (1 - o.b1) * gi;
    s.v[i] = o.b2 * s.v[i]! + (1 - o.b2) * gi * gi;
    const step = s.m[i]! / bc1 / (Math.sqrt(s.v[i]! / bc2) + o.eps);
    s.p[i] = s.p[i]! - o.lr * (step + o.wd * s.p[i]!);
  }
}

interface Spec {
  name: string;
  shape: number[];
}

// A small "model": a backbone with matrices, 1-D norms and biases (one of them 2-D, to tell the
// name rule from the rank rule) and a DINO head whose last layer is its own group.
const BACKBONE: Spec[] = [
  { name: 'embed.weight', shape: [24, 16] },
  { name: 'embed.bias', shape: [24] },
  { name: 'norm.weight', shape: [24] },
  { name: 'blocks.0.mlp.fc1.weight', shape: [48, 24] },
  { name: 'blocks.0.mlp.fc1.bias', shape: [1, 48] }, // 2-D bias: decayed by 'ndim>1' only
  { name: 'blocks.0.conv.weight', shape: [4, 3, 3, 3, 3] },
];
const LAST: Spec[] = [{ name: 'head.last_layer.weight', shape: [130, 24] }];

function hostValues(shape: number[], rng: Rng, std = 1): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, () => rng.normal() * std);
}

function makeParams(r: Runtime, specs: Spec[], rng: Rng): Tensor[] {
  return specs.map((s) => tensor(r, hostValues(s.shape, rng), s.shape, { requiresGrad: true, name: s.name }));
}

function groupsOf(backbone: Tensor[], last: Tensor[]): ParamGroup[] {
  return [
    { name: 'backbone', params: backbone, decay: 'ndim>1-not-bias' },
    { name: 'last_layer', params: last, decay: 'ndim>1-not-bias' },
  ];
}

function setGrads(params: Tensor[], grads: Float32Array[]): void {
  params.forEach((p, i) => {
    p.grad?.dispose();
    p.grad = tensor(p.rt, grads[i]!, p.shape);
  });
}

function dropGrads(params: Tensor[]): void {
  for (const p of params) {
    p.grad?.dispose();
    p.grad = null;
  }
}

describe('AdamW with parameter groups vs float64', () => {
  it('backbone decays by the DINO rule, the last layer is frozen for 2 steps then trains', async () => {
    const rng = makeRng(21);
    const backbone = makeParams(rt, BACKBONE, rng);
    const last = makeParams(rt, LAST, rng);
    const all = [...backbone, ...last];
    const init = await Promise.all(all.map((p) => p.read()));
    const opt = new AdamW(groupsOf(backbone, last), { lr: 1e-2, weightDecay: 0.04 });
    expect(opt.names).toEqual([...BACKBONE, ...LAST].map((s) => s.name));
    expect(all.map((_, i) => opt.decays(i))).toEqual([true, false, false, true, false, true, true]);
    const hyper = { b1: 0.9, b2: 0.999, eps: 1e-8 };
    const ref: RefParam[] = init.map((p) => ({ p: Float64Array.from(p), m: new Float64Array(p.length), v: new Float64Array(p.length), t: 0 }));
    for (let step = 0; step < 5; step++) {
      const grads = all.map((p) => hostValues([...p.shape], rng, 0.5));
      setGrads(all, grads);
      const lr = 1e-2 * (1 + step) / 5;
      const wd = 0.04 + 0.01 * step;
      const freeze = step < 2 ? 0 : 1;
      const scale = 0.75;
      opt.update({ lr, weightDecay: wd, gradScale: scale, lrScales: { last_layer: freeze } });
      ref.forEach((s, i) => refStep(s, grads[i]!, { ...hyper, lr: lr * (i === all.length - 1 ? freeze : 1), wd: opt.decays(i) ? wd : 0, scale }));
      if (step === 1) {
        // Frozen: the last layer is bitwise unchanged, its moments follow the gradients.
        expect(bits(await last[0]!.read())).toEqual(bits(init[all.length - 1]!));
        expectRel('adamw', 'frozen exp_avg', await opt.state()[all.length - 1]!.m.read(), ref[all.length - 1]!.m, 1e-6);
      }
    }
    for (let i = 0; i < all.length; i++) {
      expectRel('adamw', 'param', await all[i]!.read(), ref[i]!.p, 1e-6);
      expectRel('adamw', 'exp_avg', await opt.state()[i]!.m.read(), ref[i]!.m, 1e-6);
      expectRel('adamw', 'exp_avg_sq', await opt.state()[i]!.v.read(), ref[i]!.v, 1e-6);
    }
    expect(opt.paramSteps).toEqual(all.map(() => 5));
    dropGrads(all);
    opt.dispose();
    for (const p of all) p.dispose();
  });

  it('no-decay parameters are untouched by weight decay; the rule is chosen by name', async () => {
    const rng = makeRng(22);
    for (const [rule, expectDecayed] of [
      ['ndim>1-not-bias', [true, false, false, true, false, true]],
      ['ndim>1', [true, false, false, true, true, true]],
    ] as const) {
      const ps = makeParams(rt, BACKBONE, rng);
      const init = await Promise.all(ps.map((p) => p.read()));
      const opt = new AdamW(ps, { lr: 0.1, weightDecay: 0.5, decays: rule });
      // Zero gradients: the Adam step is 0, so only decay moves a parameter: p ← p·(1 − lr·wd).
      setGrads(ps, ps.map((p) => new Float32Array(p.size)));
      opt.update();
      for (let i = 0; i < ps.length; i++) {
        const now = await ps[i]!.read();
        if (expectDecayed[i]) expectRel('adamw', 'decay only', now, Array.from(init[i]!, (x) => x * (1 - 0.05)), 1e-6);
        else expect(bits(now)).toEqual(bits(init[i]!));
      }
      expect(DECAY_RULES[rule](ps[4]!, BACKBONE[4]!.name)).toBe(expectDecayed[4]);
      dropGrads(ps);
      opt.dispose();
      for (const p of ps) p.dispose();
    }
  });

  it('a group decay flag and a per-group constant lrScale', async () => {
    const rng = makeRng(23);
    const [a, b] = makeParams(rt, BACKBONE.slice(0, 2), rng);
    const ia = await a!.read();
    const ib = await b!.read();
    const opt = new AdamW(
      [
        { name: 'nodecay', params: [a!], decay: false, lrScale: 0.5 },
        { name: 'alldecay', params: [b!], decay: true },
      ],
      { lr: 0.1, weightDecay: 0.5 },
    );
    setGrads([a!, b!], [new Float32Array(a!.size), new Float32Array(b!.size)]);
    opt.update();
    expect(bits(await a!.read())).toEqual(bits(ia));
    expectRel('adamw', 'decay flag', await b!.read(), Array.from(ib, (x) => x * 0.95), 1e-6);
    expect(() => opt.update({ lrScales: { nope: 1 } })).toThrow(/no group 'nope'/);
    expect(() => new AdamW([{ params: [a!] }, { params: [a!] }])).toThrow(/twice/);
    expect(() => new AdamW([a!], { decays: 'nonsense' as never })).toThrow(/unknown decay rule/);
    dropGrads([a!, b!]);
    opt.dispose();
    a!.dispose();
    b!.dispose();
  });
});

describe('dinoParamGroups', () => {
  it('splits named parameters into params and last_layer, with names and the DINO decay rule', () => {
    const rng = makeRng(24);
    const ps = makeParams(rt, [...BACKBONE, ...LAST], rng);
    const named = ps.map((p) => [`student.${p.name}`, p] as const);
    const opt = new AdamW(dinoParamGroups(named), { lr: 1e-3 });
    expect(opt.groups.map((g) => [g.name, g.indices.length])).toEqual([
      ['params', BACKBONE.length],
      ['last_layer', 1],
    ]);
    expect(opt.keys[opt.keys.length - 1]).toBe('student.head.last_layer.weight');
    expect(ps.map((_, i) => opt.decays(i))).toEqual([true, false, false, true, false, true, true]);
    opt.dispose();
    for (const p of ps) p.dispose();
  });
});

describe('AdamW with GPU clip multipliers', () => {
  it('global clipping through the control buffer matches float64 clipping', async () => {
    const rng = makeRng(31);
    const ps = makeParams(rt, BACKBONE, rng);
    const init = await Promise.all(ps.map((p) => p.read()));
    const opt = new AdamW(ps, { lr: 1e-2, weightDecay: 0.04 });
    const clip = new GradClipper(rt, { maxNorm: 1 });
    const grads = ps.map((p) => hostValues([...p.shape], rng, 2));
    setGrads(ps, grads);
    const lossScale = 256;
    // Gradients as a loss-scaled backward would leave them; invScale removes the scale.
    setGrads(ps, grads.map((g) => g.map((x) => x * lossScale)));
    const control = clip.record(ps, { invScale: 1 / lossScale });
    opt.update({ control });
    const st = await clip.read();
    let sq = 0;
    for (const g of grads) for (const x of g) sq += x * x;
    const coef = Math.min(1, 1 / (Math.sqrt(sq) + 1e-6));
    expect(coef).toBeLessThan(0.1);
    expectRel('adamw', 'clip coef (readback)', [st.clipCoef], [coef], 1e-6);
    const hyper = { b1: 0.9, b2: 0.999, eps: 1e-8, lr: 1e-2 };
    for (let i = 0; i < ps.length; i++) {
      const s: RefParam = { p: Float64Array.from(init[i]!), m: new Float64Array(ps[i]!.size), v: new Float64Array(ps[i]!.size), t: 0 };
      refStep(s, grads[i]!, { ...hyper, wd: opt.decays(i) ? 0.04 : 0, scale: coef });
      expectRel('adamw', 'clipped param', await ps[i]!.read(), s.p, 1e-6);
      expectRel('adamw', 'clipped exp_avg', await opt.state()[i]!.m.read(), s.m, 1e-6);
    }
    dropGrads(ps);
    clip.dispose();
    opt.dispose();
    for (const p of ps) p.dispose();
  });

  it('a non-finite gradient skips the whole step on the GPU; undoStep restores the counters', async () => {
    const rng = makeRng(32);
    const ps = makeParams(rt, BACKBONE, rng);
    const opt = new AdamW(ps, { lr: 1e-2 });
    const clip = new GradClipper(rt);
    setGrads(ps, ps.map((p) => hostValues([...p.shape], rng)));
    opt.update({ control: clip.record(ps) });
    expect((await clip.read()).finite).toBe(true);
    const before = await Promise.all(ps.map((p) => p.read()));
    const mBefore = await Promise.all(opt.state().map((s) => s.m.read()));
    const vBefore = await Promise.all(opt.state().map((s) => s.v.read()));
    const grads = ps.map((p) => hostValues([...p.shape], rng));
    grads[3]![17] = NaN;
    setGrads(ps, grads);
    opt.update({ control: clip.record(ps) });
    const st = await clip.read();
    expect(st.finite).toBe(false);
    expect(st.nonFiniteTensors).toEqual([3]);
    opt.undoStep();
    expect(opt.step).toBe(1);
    expect(opt.paramSteps).toEqual(ps.map(() => 1));
    for (let i = 0; i < ps.length; i++) {
      expect(bits(await ps[i]!.read())).toEqual(bits(before[i]!));
      expect(bits(await opt.state()[i]!.m.read())).toEqual(bits(mBefore[i]!));
      expect(bits(await opt.state()[i]!.v.read())).toEqual(bits(vBefore[i]!));
    }
    expect(() => opt.undoStep()).toThrow(/no update/);
    const other = new GradClipper(rt);
    expect(() => opt.update({ control: other.recordGrads([null]) })).toThrow(/covers 1 tensors/);
    other.dispose();
    dropGrads(ps);
    clip.dispose();
    opt.dispose();
    for (const p of ps) p.dispose();
  });
});

describe('checkpoint resume', () => {
  /** A DINO-like step loop: schedules, loss scaler, GPU clipping, frozen last layer, skipped steps. */
  async function train(r: Runtime, backbone: Tensor[], last: Tensor[], opt: AdamW, scaler: DynamicLossScaler, clip: GradClipper, from: number, to: number): Promise<void> {
    const sched = new DinoSchedules({ epochs: 4, epochSteps: 3, batchSize: 128, warmupEpochs: 1, freezeLastLayerEpochs: 1 });
    const all = [...backbone, ...last];
    for (let step = from; step < to; step++) {
      // Gradients depend only on the step (as a data loader with a serialised RNG would give them).
      const rng = makeRng(1000 + step);
      const grads = all.map((p) => hostValues([...p.shape], rng, scaler.scale));
      if (step === 4) grads[1]![0] = Infinity; // one overflow: skipped, scale backs off
      setGrads(all, grads);
      const v = sched.at(step);
      const control = clip.record(all, { invScale: scaler.invScale });
      opt.update({ lr: v.lr, weightDecay: v.weightDecay, lrScales: { last_layer: v.lastLayerLrScale }, control });
      const st = await clip.read();
      if (scaler.update(st.finite)) opt.undoStep();
    }
    dropGrads(all);
    void r;
  }

  // K = 2: saved while the last layer is frozen, before the skipped step; K = 5: after both.
  for (const K of [2, 5]) it(`${K} steps, save, rebuild, load, continue: bitwise the same as an uninterrupted run`, async () => {
    const N = 9;
    const seed = makeRng(41);
    const initB = BACKBONE.map((s) => hostValues(s.shape, seed));
    const initL = LAST.map((s) => hostValues(s.shape, seed));
    const build = (b: Float32Array[], l: Float32Array[]) => {
      const backbone = BACKBONE.map((s, i) => tensor(rt, b[i]!, s.shape, { requiresGrad: true, name: s.name }));
      const last = LAST.map((s, i) => tensor(rt, l[i]!, s.shape, { requiresGrad: true, name: s.name }));
      const opt = new AdamW(groupsOf(backbone, last), { lr: 1e-3, weightDecay: 0.04 });
      return { backbone, last, opt, scaler: new DynamicLossScaler({ initScale: 2 ** 10, growthInterval: 3 }), clip: new GradClipper(rt, { maxNorm: 3 }) };
    };

    // Uninterrupted.
    const a = build(initB, initL);
    await train(rt, a.backbone, a.last, a.opt, a.scaler, a.clip, 0, N);

    // Interrupted after K steps: everything goes through host memory and JSON.
    const b = build(initB, initL);
    await train(rt, b.backbone, b.last, b.opt, b.scaler, b.clip, 0, K);
    const saved = {
      meta: JSON.stringify({ opt: b.opt.stateMeta(), scaler: b.scaler.state(), step: K }),
      params: await Promise.all([...b.backbone, ...b.last].map((p) => p.read())),
      moments: Object.fromEntries(await Promise.all(Object.entries(b.opt.stateTensors()).map(async ([k, t]) => [k, await t.read()] as const))),
    };
    expect(Object.keys(saved.moments)).toContain('head.last_layer.weight.exp_avg_sq');
    b.opt.dispose();
    b.clip.dispose();
    for (const p of [...b.backbone, ...b.last]) p.dispose();

    const meta = JSON.parse(saved.meta) as { opt: ReturnType<AdamW['stateMeta']>; scaler: ReturnType<DynamicLossScaler['state']>; step: number };
    const c = build(saved.params.slice(0, BACKBONE.length), saved.params.slice(BACKBONE.length));
    c.opt.loadState(meta.opt, saved.moments);
    c.scaler.loadState(meta.scaler);
    await train(rt, c.backbone, c.last, c.opt, c.scaler, c.clip, meta.step, N);

    expect(c.scaler.state()).toEqual(a.scaler.state());
    expect(c.scaler.skippedSteps).toBe(1);
    expect(c.opt.stateMeta()).toEqual(a.opt.stateMeta());
    const pa = [...a.backbone, ...a.last];
    const pc = [...c.backbone, ...c.last];
    for (let i = 0; i < pa.length; i++) expect(bits(await pc[i]!.read()), pa[i]!.name).toEqual(bits(await pa[i]!.read()));
    const ta = a.opt.stateTensors();
    const tc = c.opt.stateTensors();
    for (const k of Object.keys(ta)) expect(bits(await tc[k]!.read()), k).toEqual(bits(await ta[k]!.read()));
    // And training moved things (the comparison is not between untouched tensors).
    expect(bits(await pa[0]!.read())).not.toEqual(bits(initB[0]!));
    expect(bits(await a.last[0]!.read())).not.toEqual(bits(initL[0]!));

    for (const x of [a, c]) {
      x.opt.dispose();
      x.clip.dispose();
      for (const p of [...x.backbone, ...x.last]) p.dispose();
    }
  });

  it('loadState takes moment tensors too, and rejects missing or mis-sized entries', async () => {
    const rng = makeRng(42);
    const ps = makeParams(rt, BACKBONE.slice(0, 2), rng);
    const opt = new AdamW(ps);
    setGrads(ps, ps.map((p) => hostValues([...p.shape], rng)));
    opt.update();
    const fresh = new AdamW(ps);
    fresh.loadState(opt.stateMeta(), opt.stateTensors());
    for (const [k, t] of Object.entries(opt.stateTensors())) expect(bits(await fresh.stateTensors()[k]!.read())).toEqual(bits(await t.read()));
    expect(fresh.paramSteps).toEqual([1, 1]);
    const host = { 'embed.weight.exp_avg': new Float32Array(384), 'embed.weight.exp_avg_sq': new Float32Array(384), 'embed.bias.exp_avg': new Float32Array(24) };
    expect(() => fresh.loadState(opt.stateMeta(), host)).toThrow(/'embed.bias.exp_avg_sq' is missing/);
    expect(() => fresh.loadState(opt.stateMeta(), { ...host, 'embed.bias.exp_avg_sq': new Float32Array(3) })).toThrow(/has 3 values/);
    expect(() => fresh.loadState({ step: 1, paramSteps: {} }, host)).toThrow(/no valid step count/);
    dropGrads(ps);
    opt.dispose();
    fresh.dispose();
    for (const p of ps) p.dispose();
  });

  it('parameters without unique names are keyed by index', () => {
    const a = tensor(rt, [1, 2], [2]);
    const b = tensor(rt, [3, 4], [2]);
    const opt = new AdamW([a, b]);
    expect(opt.keys).toEqual(['param0', 'param1']);
    expect(Object.keys(opt.stateTensors())).toEqual(['param0.exp_avg', 'param0.exp_avg_sq', 'param1.exp_avg', 'param1.exp_avg_sq']);
    const named = new AdamW([a, b], { names: ['x', 'y'] });
    expect(named.keys).toEqual(['x', 'y']);
    for (const x of [opt, named]) x.dispose();
    a.dispose();
    b.dispose();
  });
});

describe('AdamW binds large tensors in pieces', () => {
  it('bitwise the same update over the binding limit and a split grid', async () => {
    const small = await Runtime.create({ maxStorageBufferBindingSize: 16 * 1024, maxWorkgroupsPerDimension: 4, maxBatch: 64 });
    try {
      const rng = makeRng(51);
      const shape = [101, 97];
      const p0 = hostValues(shape, rng);
      const g = [hostValues(shape, rng), hostValues(shape, rng)];
      const results: Float32Array[] = [];
      for (const r of [rt, small]) {
        const p = tensor(r, p0, shape, { requiresGrad: true });
        const opt = new AdamW([p], { lr: 0.01 });
        const clip = new GradClipper(r, { maxNorm: 10 });
        for (const gi of g) {
          setGrads([p], [gi]);
          const opts: AdamWStepOptions = { control: clip.record([p]) };
          opt.update(opts);
        }
        results.push(await p.read());
        dropGrads([p]);
        clip.dispose();
        opt.dispose();
        p.dispose();
      }
      expect(bits(results[1]!)).toEqual(bits(results[0]!));
    } finally {
      small.dispose();
    }
  });
});
