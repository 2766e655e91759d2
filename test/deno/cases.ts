/**
 * The cases both hosts run: Node (Dawn, under vitest) and Deno (wgpu, from the browser bundle).
 * Plain TypeScript with no host imports: the library comes in as a parameter, so the same code
 * drives `src/index.ts` in Node and the esbuild bundle in Deno, and the two hosts' numbers can be
 * compared output by output.
 *
 * Every case returns named float32 outputs (forward values and gradients), each with the
 * relative-error bound the Node suite uses for that quantity (maxRelError: max|a − e| / max|e|)
 * and, where there is one, the float64 reference it must meet. The same bound applies between the
 * two hosts. Quantities without an element-wise float64 reference (the Swin block's gradients) are
 * checked along random directions against central differences of the float64 block instead, as
 * test/models/swin-vit-variants.test.ts checks the whole SwinViT.
 *
 * Inputs come from seeded RNGs and are rounded to f32 before the references see them, so every
 * difference is arithmetic.
 */
import type * as Reef from '../../src/index';
import { type Arr, arr, makeRng, maxRelError, type Rng } from '../ref/array';
import * as R from '../ref/ops';
import * as G from '../ref/grads';
import { conv3d as refConv3d, conv3dBackward } from '../ref/conv3d';
import { swinBlock as refSwinBlock } from '../ref/swin';
import { coralBayEncoder } from '../ref/coralbay';
import { refWindowAttention, type AttentionGeometry } from '../ref/window-attention';

export type Lib = typeof Reef;
type Tensor = Reef.Tensor;
type Runtime = Reef.Runtime;

export interface Output {
  name: string;
  shape: number[];
  values: Float32Array;
  /** float64 reference, when `refs` was asked for and the quantity has one. */
  ref?: Float64Array;
  /** Largest allowed maxRelError against the reference, and between the two hosts. */
  bound: number;
}

/** A scalar check (a directional derivative against finite differences). */
export interface Check {
  name: string;
  err: number;
  bound: number;
}

export interface CaseResult {
  outputs: Output[];
  checks: Check[];
}

export interface RunOptions {
  /** Compute the float64 references (and the finite-difference checks). */
  refs: boolean;
}

export interface Case {
  name: string;
  run(lib: Lib, rt: Runtime, opts: RunOptions): Promise<CaseResult>;
}

// Bounds of the Node suite, by file.
/** test/ops/matmul.test.ts: relative error per √(inner length). */
const MM_C = 2.5e-7;
/** test/ops/norm.test.ts */
const LN = 1e-6;
const SOFTMAX_FWD = 6e-7;
const SOFTMAX_GRAD = 2e-6;
/** test/ops/reduce.test.ts (the gradient of sum is a broadcast copy: exact). */
const SUM_FWD = 1e-6;
const SUM_GRAD = 0;
const MEAN_GRAD = 3e-7;
/** test/ops/elementwise.test.ts */
const BIN_FWD = 2e-7;
const BIN_GRAD = 1e-6;
const GELU_FWD = 3e-7;
const GELU_GRAD = 4e-7;
/** test/ops/conv3d.test.ts: C·1e-7·√K for a dot product of K terms. */
const CONV_C = 1.5;
/** test/ops/window-attention3d.test.ts */
const ATTN = 1e-5;
/** test/ops/binding-pieces.test.ts (one Swin block forward). */
const BLOCK_FWD = 2e-5;
/** test/models/swin-vit-variants.test.ts: directional derivatives against finite differences. */
const DIR_BOUND = 5e-4;
/**
 * The Swin block's gradients have no element-wise float64 reference; between the hosts they are
 * held to the attention op's bound (each gradient is a few matmuls and one attention backward).
 */
const BLOCK_GRAD_HOSTS = 1e-5;
/** test/models/coralbay-encoder.test.ts */
const CB_FWD = 1e-5;
/** dec4 comes from a 1×1×1 hs4 here: its InstanceNorms amplify rounding (see that file). */
const CB_DEC4 = 2e-3;

// ---------------------------------------------------------------------------------------------
// Host-side helpers
// ---------------------------------------------------------------------------------------------

/** N(0, std²) values rounded to f32. */
function randnT(shape: readonly number[], rng: Rng, std = 1, offset = 0): Arr {
  const x = arr(shape);
  for (let i = 0; i < x.data.length; i++) x.data[i] = Math.fround(rng.normal() * std + offset);
  return x;
}

function out(name: string, shape: readonly number[], values: Float32Array, bound: number, ref?: Arr | Float64Array): Output {
  const o: Output = { name, shape: [...shape], values, bound };
  if (ref) o.ref = 'data' in ref ? ref.data : ref;
  return o;
}

function disposeAll(ts: Iterable<Tensor | null | undefined>): void {
  for (const t of ts) {
    if (!t) continue;
    t.grad?.dispose();
    t.grad = null;
    t.dispose();
  }
}

interface OpSpec {
  inputs: Arr[];
  names: string[];
  /** Which inputs get a gradient (default all). */
  grad?: boolean[];
  gpu: (lib: Lib, ts: Tensor[]) => Tensor;
  ref: (xs: Arr[]) => Arr;
  vjp: (xs: Arr[], g: Arr) => (Arr | undefined)[];
  bound: number;
  gradBound: number | number[];
  rng: Rng;
}

/** One op: forward, then backward with a random upstream gradient; every input's gradient. */
async function runOp(lib: Lib, rt: Runtime, s: OpSpec, opts: RunOptions): Promise<CaseResult> {
  const wants = s.inputs.map((_, i) => s.grad?.[i] ?? true);
  const ts = s.inputs.map((x, i) => lib.tensor(rt, x.data, x.shape, { requiresGrad: wants[i]! }));
  let y: Tensor | null = null;
  let gt: Tensor | null = null;
  try {
    y = lib.tidy(() => s.gpu(lib, ts));
    const g = randnT(y.shape, s.rng);
    gt = lib.tensor(rt, g.data, g.shape);
    const outputs = [out('out', y.shape, await y.read(), s.bound, opts.refs ? s.ref(s.inputs) : undefined)];
    lib.backward(y, gt);
    const refs = opts.refs ? s.vjp(s.inputs, g) : [];
    for (let i = 0; i < ts.length; i++) {
      if (!wants[i]) continue;
      const grad = ts[i]!.grad;
      if (!grad) throw new Error(`no gradient reached ${s.names[i]}`);
      const bound = Array.isArray(s.gradBound) ? s.gradBound[i]! : s.gradBound;
      outputs.push(out(`d${s.names[i]}`, grad.shape, await grad.read(), bound, refs[i]));
    }
    return { outputs, checks: [] };
  } finally {
    disposeAll([...ts, y, gt]);
  }
}

// ---------------------------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------------------------

interface MM {
  M: number;
  K: number;
  N: number;
  aBatch?: number[];
  transA?: boolean;
  transB?: boolean;
}

function matmulCase(name: string, c: MM, seed: number): Case {
  return {
    name,
    run(lib, rt, opts) {
      const rng = makeRng(seed);
      const a = [...(c.aBatch ?? []), c.transA ? c.K : c.M, c.transA ? c.M : c.K];
      const b = [c.transB ? c.N : c.K, c.transB ? c.K : c.N];
      const batch = (c.aBatch ?? []).reduce((p, d) => p * d, 1);
      const mo = { transA: c.transA ?? false, transB: c.transB ?? false };
      const tol = (inner: number) => MM_C * Math.sqrt(inner);
      return runOp(lib, rt, {
        inputs: [randnT(a, rng), randnT(b, rng), randnT([c.N], rng)],
        names: ['a', 'b', 'bias'],
        rng,
        gpu: (L, [ta, tb, tbias]) => L.matmul(ta!, tb!, { ...mo, bias: tbias! }),
        ref: ([ra, rb, rbias]) => R.matmul(ra!, rb!, { ...mo, bias: rbias! }),
        vjp: ([ra, rb, rbias], g) => {
          const r = G.matmulBackward(ra!, rb!, g, { ...mo, bias: rbias! });
          return [r.da, r.db, r.dbias];
        },
        bound: tol(c.K),
        gradBound: [tol(c.N), tol(c.M * batch), tol(c.M * batch)],
      }, opts);
    },
  };
}

interface ConvSpec {
  x: [number, number, number, number, number];
  co: number;
  k: number;
  padding?: number;
}

function conv3dCase(name: string, c: ConvSpec, seed: number): Case {
  return {
    name,
    run(lib, rt, opts) {
      const rng = makeRng(seed);
      const [B, Ci, D, H, W] = c.x;
      const K = c.k ** 3;
      const pad = c.padding ?? Math.floor(c.k / 2);
      const positions = B * (D + 2 * pad - c.k + 1) * (H + 2 * pad - c.k + 1) * (W + 2 * pad - c.k + 1);
      const tol = (inner: number) => CONV_C * 1e-7 * Math.sqrt(inner);
      return runOp(lib, rt, {
        inputs: [randnT(c.x, rng), randnT([c.co, Ci, c.k, c.k, c.k], rng)],
        names: ['x', 'weight'],
        rng,
        gpu: (L, [x, w]) => L.conv3d(x!, w!, c.padding === undefined ? {} : { padding: c.padding }),
        ref: ([x, w]) => refConv3d(x!, w!, pad),
        vjp: ([x, w], g) => {
          const r = conv3dBackward(x!, w!, g, pad);
          return [r.dx, r.dw];
        },
        bound: tol(Ci * K),
        gradBound: [tol(c.co * K), tol(positions)],
      }, opts);
    },
  };
}

/** Shifted windows with padding and the shift-region mask: [1, 9, 3, 8] takes window [7, 3, 7], shift [3, 0, 3]. */
function attentionCase(name: string, variant: 'rows' | 'tiled', seed: number): Case {
  return {
    name,
    run(lib, rt, opts) {
      const size: [number, number, number, number] = [1, 9, 3, 8];
      const heads = 2;
      const C = heads * 4; // head width 4: the rows kernels read vec4s
      const cfg = [7, 7, 7] as const;
      const ws = lib.windowAndShift([size[1], size[2], size[3]], cfg, [3, 3, 3]);
      if (ws.shift.every((s) => s === 0)) throw new Error('attention case: expected a shifted window');
      const geo: AttentionGeometry = { heads, win: ws.window, shift: ws.shift, cfg };
      const rng = makeRng(seed);
      const shape = [...size, C];
      const tableRows = (2 * cfg[0] - 1) * (2 * cfg[1] - 1) * (2 * cfg[2] - 1);
      return runOp(lib, rt, {
        inputs: [randnT(shape, rng), randnT(shape, rng), randnT(shape, rng), randnT([3 * C], rng), randnT([tableRows, heads], rng, 0.5)],
        names: ['q', 'k', 'v', 'qkvBias', 'table'],
        rng,
        gpu: (L, [q, k, v, b, t]) => L.windowAttention3d({ q: q!, k: k!, v: v!, qkvBias: b!, table: t!, heads, window: geo.win, shift: geo.shift, configuredWindow: cfg, variant }),
        ref: (xs) => refWindowAttention(xs, geo).out,
        vjp: (xs, g) => refWindowAttention(xs, geo, g).grads,
        bound: ATTN,
        gradBound: ATTN,
      }, opts);
    },
  };
}

const OP_CASES: Case[] = [
  matmulCase('matmul 17x33x7 transB+bias', { M: 17, K: 33, N: 7, transB: true }, 11),
  matmulCase('matmul [3]x7x5x17 transA+bias', { M: 7, K: 5, N: 17, aBatch: [3], transA: true }, 12),
  {
    // An offset of 3 (std 2), as in the Node suite: the two-pass statistics must not lose it.
    name: 'layerNorm [7,65] affine',
    run(lib, rt, opts) {
      const rng = makeRng(13);
      return runOp(lib, rt, {
        inputs: [randnT([7, 65], rng, 2, 3), randnT([65], rng), randnT([65], rng)],
        names: ['x', 'weight', 'bias'],
        rng,
        gpu: (L, [x, w, b]) => L.layerNorm(x!, w!, b!, 1e-5),
        ref: ([x, w, b]) => R.layerNorm(x!, w!, b!, 1e-5),
        vjp: ([x, w, b], g) => {
          const r = G.layerNormBackward(x!, w!, b!, g, 1e-5);
          return [r.dx, r.dw, r.db];
        },
        bound: LN,
        gradBound: LN,
      }, opts);
    },
  },
  {
    name: 'softmax [2,3,127]',
    run(lib, rt, opts) {
      const rng = makeRng(14);
      return runOp(lib, rt, {
        inputs: [randnT([2, 3, 127], rng, 3)],
        names: ['x'],
        rng,
        gpu: (L, [x]) => L.softmax(x!),
        ref: ([x]) => R.softmax(x!),
        vjp: ([x], g) => [G.softmaxBackward(R.softmax(x!), g)],
        bound: SOFTMAX_FWD,
        gradBound: SOFTMAX_GRAD,
      }, opts);
    },
  },
  {
    name: 'sum [17,33,5] axes [0,2]',
    run(lib, rt, opts) {
      const rng = makeRng(15);
      return runOp(lib, rt, {
        inputs: [randnT([17, 33, 5], rng)],
        names: ['x'],
        rng,
        gpu: (L, [x]) => L.sum(x!, [0, 2]),
        ref: ([x]) => R.sum(x!, [0, 2]),
        vjp: ([x], g) => [G.sumBackward(g, x!.shape, [0, 2])],
        bound: SUM_FWD,
        gradBound: SUM_GRAD,
      }, opts);
    },
  },
  {
    name: 'mean [5,7,3] axis 1 keepDims',
    run(lib, rt, opts) {
      const rng = makeRng(16);
      return runOp(lib, rt, {
        inputs: [randnT([5, 7, 3], rng)],
        names: ['x'],
        rng,
        gpu: (L, [x]) => L.mean(x!, [1], true),
        ref: ([x]) => R.mean(x!, [1], true),
        vjp: ([x], g) => [G.meanBackward(g, x!.shape, [1], true)],
        bound: SUM_FWD,
        gradBound: MEAN_GRAD,
      }, opts);
    },
  },
  {
    // Wide inputs: both tails of erf and its small-|x| branch.
    name: 'gelu [127,5,3]',
    run(lib, rt, opts) {
      const rng = makeRng(17);
      return runOp(lib, rt, {
        inputs: [randnT([127, 5, 3], rng, 3)],
        names: ['x'],
        rng,
        gpu: (L, [x]) => L.gelu(x!),
        ref: ([x]) => R.gelu(x!),
        vjp: ([x], g) => [G.geluBackward(x!, g)],
        bound: GELU_FWD,
        gradBound: GELU_GRAD,
      }, opts);
    },
  },
  {
    name: 'mul [5,7,3] * [7,1] (broadcast)',
    run(lib, rt, opts) {
      const rng = makeRng(18);
      return runOp(lib, rt, {
        inputs: [randnT([5, 7, 3], rng), randnT([7, 1], rng)],
        names: ['a', 'b'],
        rng,
        gpu: (L, [a, b]) => L.mul(a!, b!),
        ref: ([a, b]) => R.mul(a!, b!),
        vjp: ([a, b], g) => {
          const r = G.mulBackward(a!, b!, g);
          return [r.da, r.db];
        },
        bound: BIN_FWD,
        gradBound: BIN_GRAD,
      }, opts);
    },
  },
  conv3dCase('conv3d [1,3,5,4,7]->5 k3', { x: [1, 3, 5, 4, 7], co: 5, k: 3 }, 19),
  conv3dCase('conv3d [2,3,4,4,4]->3 k1', { x: [2, 3, 4, 4, 4], co: 3, k: 1 }, 20),
  conv3dCase('conv3d [1,2,3,2,4]->9 k3 padding 2', { x: [1, 2, 3, 2, 4], co: 9, k: 3, padding: 2 }, 21),
  attentionCase('windowAttention3d rows [1,9,3,8,8] shifted', 'rows', 22),
  attentionCase('windowAttention3d tiled [1,9,3,8,8] shifted', 'tiled', 23),
];

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/** Reads every weight back (the exact f32 values initWeights drew) as float64 arrays for the references. */
async function hostCopies(ws: Map<string, Tensor>): Promise<Map<string, Arr>> {
  const out = new Map<string, Arr>();
  for (const [name, t] of ws) out.set(name, arr(t.shape, await t.read()));
  return out;
}

function lookup<T>(m: Map<string, T>): (name: string) => T {
  return (name) => {
    const v = m.get(name);
    if (v === undefined) throw new Error(`weight ${name} missing`);
    return v;
  };
}

/**
 * The second (shifted) block of stage 1 of a feature-size-12 SwinViT (3 heads of width 4) on
 * [1, 9, 3, 8, 12]: window [7, 3, 7], shift [3, 0, 3], padded on D and W, masked. Forward against
 * the float64 block; the gradients of Σ w ⊙ block(x) for the input and each of the block's 13
 * parameters along a random direction each, against central differences of the float64 block.
 */
const swinBlockCase: Case = {
  name: 'swinBlock [1,9,3,8,12] shifted',
  async run(lib, rt, opts) {
    const p = 'swinViT.layers1.0.blocks.1';
    const all = lib.paramShapes({ kind: 'swin-vit', ...lib.swinViTConfig({ featureSize: 12 }) });
    const shapes = new Map([...all].filter(([name]) => name.startsWith(`${p}.`)));
    const size = [9, 3, 8] as const;
    const cfg = [7, 7, 7] as const;
    const { window, shift } = lib.windowAndShift(size, cfg, [3, 3, 3]);
    const rng = makeRng(24);
    const x = randnT([1, ...size, 12], rng);
    const w = randnT(x.shape, rng);
    const W = lib.initWeights(rt, shapes, 25, true);
    const xt = lib.tensor(rt, x.data, x.shape, { requiresGrad: true });
    const wt = lib.tensor(rt, w.data, w.shape);
    let y: Tensor | null = null;
    try {
      y = lib.swinBlock(xt, lookup(W), p, 3, window, shift, cfg);
      const outputs: Output[] = [];
      const host = opts.refs ? await hostCopies(W) : null;
      outputs.push(out('out', y.shape, await y.read(), BLOCK_FWD, host ? refSwinBlock(x, lookup(host), p, 3, window, shift, cfg) : undefined));
      lib.backward(y, wt);
      const grads = new Map<string, Float32Array>([['input', await xt.grad!.read()]]);
      for (const [name, t] of W) {
        if (!t.grad) throw new Error(`no gradient reached ${name}`);
        grads.set(name, await t.grad.read());
      }
      for (const [name, g] of grads) outputs.push(out(`d${name === 'input' ? 'x' : name.slice(p.length + 1)}`, name === 'input' ? x.shape : W.get(name)!.shape, g, BLOCK_GRAD_HOSTS));
      const checks: Check[] = [];
      if (host) {
        const loss = (xx: Arr, ww: Map<string, Arr>) => {
          const yy = refSwinBlock(xx, lookup(ww), p, 3, window, shift, cfg);
          let s = 0;
          for (let i = 0; i < yy.data.length; i++) s += yy.data[i]! * w.data[i]!;
          return s;
        };
        const dirRng = makeRng(26);
        const h = 1e-6;
        for (const [name, g] of grads) {
          const base = name === 'input' ? x : host.get(name)!;
          const d = scaledDirection(base, dirRng);
          const moved = (s: number) => arr(base.shape, base.data.map((v, i) => v + s * d[i]!));
          const at = (s: number) => (name === 'input' ? loss(moved(s), host) : loss(x, new Map(host).set(name, moved(s))));
          const fd = (at(h) - at(-h)) / (2 * h);
          let an = 0;
          let terms = 0;
          for (let i = 0; i < d.length; i++) {
            an += g[i]! * d[i]!;
            terms += (g[i]! * d[i]!) ** 2;
          }
          // Relative to the size of the terms too: a random direction can make the sum cancel.
          const diff = Math.abs(an - fd);
          checks.push({ name: `d${name === 'input' ? 'x' : name.slice(p.length + 1)}·dir vs finite differences`, err: diff === 0 ? 0 : diff / Math.max(Math.abs(fd), Math.sqrt(terms)), bound: DIR_BOUND });
        }
      }
      return { outputs, checks };
    } finally {
      disposeAll([xt, wt, y, ...W.values()]);
    }
  },
};

/** N(0, 1) scaled by the array's RMS value: a direction of the array's own size. */
function scaledDirection(a: Arr, rng: Rng): Float64Array {
  let ss = 0;
  for (const v of a.data) ss += v * v;
  const rms = Math.sqrt(ss / Math.max(a.data.length, 1)) || 1;
  return Float64Array.from(a.data, () => rng.normal() * rms);
}

/**
 * What `reef features` computes for a CoralBay checkpoint, on coralbay-tiny (fs 12, use_v2) with
 * initWeights(seed 31) and a 32³ head phantom windowed to [0, 1]: the five hidden states, enc0…enc3,
 * dec4 and the 24·fs embedding, against the float64 encoder.
 */
const coralBayCase: Case = {
  name: 'coralBay features 32^3 phantom (coralbay-tiny)',
  async run(lib, rt, opts) {
    const cfg = lib.PRESETS['coralbay-tiny']!;
    const fs = cfg.featureSize;
    const vol = lib.makePhantom({ shape: [32, 32, 32], seed: 7 });
    const data = lib.windowHu(vol.data, -1000, 1000);
    const W = lib.initWeights(rt, lib.paramShapes(cfg), 31);
    const x = lib.tensor(rt, data, [1, 1, 32, 32, 32]);
    let r: Reef.CoralBayOutputs | null = null;
    try {
      r = lib.noGrad(() => lib.coralBayEncoderForward(x, lookup(W), cfg));
      const ref = opts.refs ? coralBayEncoder(arr(x.shape, data), lookup(await hostCopies(W)), { depths: [...cfg.depths], heads: [...cfg.heads], merge: cfg.merge }) : null;
      const outputs: Output[] = [];
      for (const [i, h] of r.hidden.entries()) outputs.push(out(`hidden_states.${i}`, h.shape, await h.read(), CB_FWD, ref?.hidden[i]));
      for (const [i, name] of (['enc0', 'enc1', 'enc2', 'enc3', 'dec4'] as const).entries()) {
        const k = i === 4 ? 5 : i; // maps[4] is hidden_states.3
        outputs.push(out(name, r.maps[k]!.shape, await r.maps[k]!.read(), name === 'dec4' ? CB_DEC4 : CB_FWD, ref?.maps[k]));
      }
      // The embedding's enc0…enc3 means (8·fs) hold the tight bound; the dec4 means (16·fs) dec4's.
      const emb = await r.embedding.read();
      const split = 8 * fs;
      outputs.push(out('embedding[enc0..enc3]', [1, split], emb.slice(0, split), CB_FWD, ref?.embedding.data.slice(0, split)));
      outputs.push(out('embedding[dec4]', [1, 24 * fs - split], emb.slice(split), CB_DEC4, ref?.embedding.data.slice(split)));
      return { outputs, checks: [] };
    } finally {
      disposeAll([x, ...W.values(), ...(r ? [r.embedding, ...r.hidden, ...r.maps.filter((_, i) => i !== 4)] : [])]);
    }
  },
};

export const CASES: Case[] = [...OP_CASES, swinBlockCase, coralBayCase];

// ---------------------------------------------------------------------------------------------
// Checking and transport
// ---------------------------------------------------------------------------------------------

export interface Failure {
  what: string;
  err: number;
  bound: number;
}

/** Errors of every output against its reference and every check; those over their bound. */
export function verify(caseName: string, r: CaseResult): { lines: string[]; failures: Failure[] } {
  const lines: string[] = [];
  const failures: Failure[] = [];
  for (const o of r.outputs) {
    if (!o.ref) continue;
    const err = o.values.length === o.ref.length ? maxRelError(o.values, o.ref) : Infinity;
    lines.push(`${caseName} ${o.name}: ${err.toExponential(2)} (bound ${o.bound.toExponential(1)})`);
    if (!(err <= o.bound)) failures.push({ what: `${caseName} ${o.name}`, err, bound: o.bound });
  }
  for (const c of r.checks) {
    lines.push(`${caseName} ${c.name}: ${c.err.toExponential(2)} (bound ${c.bound.toExponential(1)})`);
    if (!(c.err <= c.bound)) failures.push({ what: `${caseName} ${c.name}`, err: c.err, bound: c.bound });
  }
  return { lines, failures };
}

/** One case's outputs as JSON-safe values: float32 bytes in base64 (exact, and a third of decimal text). */
export interface SerialOutput {
  name: string;
  shape: number[];
  bound: number;
  f32: string;
  /** maxRelError against the float64 reference, when it was computed. */
  errRef?: number;
}

export interface SerialCase {
  outputs: SerialOutput[];
  checks: Check[];
}

export function serialize(r: CaseResult): SerialCase {
  return {
    outputs: r.outputs.map((o) => ({
      name: o.name,
      shape: o.shape,
      bound: o.bound,
      f32: toBase64(new Uint8Array(o.values.buffer, o.values.byteOffset, o.values.byteLength)),
      ...(o.ref ? { errRef: maxRelError(o.values, o.ref) } : {}),
    })),
    checks: r.checks,
  };
}

export function deserializeValues(o: SerialOutput): Float32Array {
  const bytes = fromBase64(o.f32);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

// btoa/atob exist in Node, Deno and browsers; they take binary strings, built here in chunks.
function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return bytes;
}
