/**
 * AdamW on the GPU. Parameters are f32 master weights; moments live on the GPU beside them.
 *
 * Parameters come as a flat list or as groups, each with its own LR multiplier (e.g. 0 for a
 * frozen last layer) and weight-decay rule. By default 1-D parameters get no decay; the DINO rule
 * (`'ndim>1-not-bias'`) also spares any parameter whose name ends in ".bias".
 *
 * Gradients may be scaled by a host number (`gradScale`) and/or by multipliers the GPU computed
 * (`control`, from GradClipper): then the kernel also skips the whole step on the GPU when a
 * gradient was not finite, so clipping needs no readback before the update.
 */
import code from '../../shaders/adamw.wgsl';
import type { ShaderFile } from '../gpu/kernel.js';
import { ReefError } from '../gpu/errors.js';
import { grid1d } from '../ops/geometry.js';
import { keep, Tensor } from '../tensor/tensor.js';
import type { GradControl } from './grad-clip.js';
import { elementPieces, pieceSlice, zerosF32 } from './pieces.js';

export const ADAMW: ShaderFile = { name: 'adamw', code };

export type DecayFn = (p: Tensor, name: string) => boolean;
/** Named weight-decay rules: 'ndim>1' (the default), 'ndim>1-not-bias' (DINO: also no decay for "*.bias"). */
export type DecayRule = 'ndim>1' | 'ndim>1-not-bias';

export const DECAY_RULES: Record<DecayRule, DecayFn> = {
  'ndim>1': (p) => p.ndim > 1,
  'ndim>1-not-bias': (p, name) => p.ndim > 1 && !name.endsWith('.bias'),
};

export interface ParamGroup {
  /** Key for per-step LR multipliers (`update({ lrScales: { [name]: s } })`). */
  name?: string;
  params: readonly Tensor[];
  /** Parameter names, for the decay rule and checkpoint keys (default: each tensor's `.name`). */
  names?: readonly string[];
  /** LR multiplier (default 1). At 0 the parameters stay bitwise unchanged while the moments still
   * follow the gradients (PyTorch's AdamW with lr = 0, as DINOv2 freezes its last layer). */
  lrScale?: number;
  /** Weight decay for this group: on/off, or a rule per parameter (default: the optimizer's rule). */
  decay?: boolean | DecayRule | DecayFn;
}

export interface AdamWOptions {
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters are decayed (default 'ndim>1'). */
  decays?: DecayRule | DecayFn | ((p: Tensor) => boolean);
  /** Names of the parameters of a flat list (default: each tensor's `.name`). */
  names?: readonly string[];
}

export interface AdamWStepOptions {
  lr?: number;
  weightDecay?: number;
  /** Multiplies every gradient before the update (clipping, loss-scale removal). */
  gradScale?: number;
  /** LR multipliers by group name for this step, overriding the groups' own `lrScale`. */
  lrScales?: Record<string, number>;
  /**
   * Per-parameter gradient multipliers and a finiteness flag on the GPU (GradClipper.record, with
   * the parameters in this optimizer's order). The step is skipped on the GPU when the flag is 0;
   * the host learns that from the clipper's readback and must then call `undoStep()`.
   */
  control?: GradControl;
}

/** The optimizer's host state (JSON); the moments are tensors, from `stateTensors()`. */
export interface AdamWStateMeta {
  step: number;
  /** Updates applied to each parameter, by state key. */
  paramSteps: Record<string, number>;
}

interface Group {
  name: string;
  lrScale: number;
  indices: number[];
}

export class AdamW {
  step = 0;
  readonly lr: number;
  readonly weightDecay: number;
  readonly params: readonly Tensor[];
  /** Parameter names, in `params` order. */
  readonly names: readonly string[];
  /** Checkpoint key of each parameter (its name when names are unique, else its index). */
  readonly keys: readonly string[];
  readonly groups: readonly Group[];
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly moments: { m: Tensor; v: Tensor }[];
  private readonly decayed: boolean[];
  private readonly groupOf: number[];
  /** Updates applied to each parameter (its bias-correction step). */
  readonly paramSteps: number[];
  private lastUpdated: number[] | null = null;

  constructor(params: readonly Tensor[] | readonly ParamGroup[], opts: AdamWOptions = {}) {
    this.lr = opts.lr ?? 1e-3;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    const defaultRule: DecayFn = typeof opts.decays === 'string' ? ruleByName(opts.decays) : ((opts.decays as DecayFn | undefined) ?? DECAY_RULES['ndim>1']);
    const groupList: ParamGroup[] = isGroupList(params) ? [...params] : [{ params, ...(opts.names ? { names: opts.names } : {}) }];
    const flat: Tensor[] = [];
    const names: string[] = [];
    const decayed: boolean[] = [];
    const groupOf: number[] = [];
    const groups: Group[] = [];
    const seen = new Set<Tensor>();
    groupList.forEach((g, gi) => {
      if (g.names && g.names.length !== g.params.length) throw new ReefError(`AdamW: group ${g.name ?? gi} has ${g.params.length} parameters but ${g.names.length} names`);
      const rule: DecayFn = g.decay === undefined ? defaultRule : typeof g.decay === 'boolean' ? () => g.decay as boolean : typeof g.decay === 'string' ? ruleByName(g.decay) : g.decay;
      const name = g.name ?? `group${gi}`;
      if (groups.some((x) => x.name === name)) throw new ReefError(`AdamW: two groups are named '${name}'`);
      const lrScale = g.lrScale ?? 1;
      checkScale(lrScale, `group '${name}' lrScale`);
      const indices: number[] = [];
      g.params.forEach((p, j) => {
        if (seen.has(p)) throw new ReefError(`AdamW: parameter ${p.describe()} is given twice`);
        seen.add(p);
        if (p.dtype !== 'f32') throw new ReefError(`AdamW: parameter ${p.describe()} must be f32 (master weights)`);
        const pname = g.names?.[j] ?? p.name;
        indices.push(flat.length);
        flat.push(p);
        names.push(pname);
        decayed.push(rule(p, pname));
        groupOf.push(groups.length);
      });
      groups.push({ name, lrScale, indices });
    });
    this.params = flat;
    this.names = names;
    const unique = names.every((n) => n !== '') && new Set(names).size === names.length;
    this.keys = unique ? names : names.map((_, i) => `param${i}`);
    this.groups = groups;
    this.decayed = decayed;
    this.groupOf = groupOf;
    this.moments = flat.map((p) => ({ m: keep(zerosF32(p.rt, p.shape)), v: keep(zerosF32(p.rt, p.shape)) }));
    this.paramSteps = flat.map(() => 0);
  }

  /** Whether parameter i gets weight decay. */
  decays(i: number): boolean {
    return this.decayed[i]!;
  }

  /** Applies one update from each parameter's `.grad` (parameters without one are skipped). */
  update(opts: AdamWStepOptions = {}): void {
    const lr = opts.lr ?? this.lr;
    const wd = opts.weightDecay ?? this.weightDecay;
    const gradScale = opts.gradScale ?? 1;
    const control = opts.control;
    if (control && control.count !== this.params.length) {
      throw new ReefError(`AdamW: the gradient control buffer covers ${control.count} tensors, the optimizer has ${this.params.length}`);
    }
    if (opts.lrScales) {
      for (const [name, s] of Object.entries(opts.lrScales)) {
        if (!this.groups.some((g) => g.name === name)) throw new ReefError(`AdamW: lrScales names no group '${name}' (groups: ${this.groups.map((g) => g.name).join(', ')})`);
        checkScale(s, `lrScales['${name}']`);
      }
    }
    const groupLr = this.groups.map((g) => lr * (opts.lrScales?.[g.name] ?? g.lrScale));
    this.step++;
    const updated: number[] = [];
    this.params.forEach((p, i) => {
      if (!p.grad || p.size === 0) return;
      if (p.grad.dtype !== 'f32' || p.grad.size !== p.size) throw new ReefError(`AdamW: gradient ${p.grad.describe()} of ${p.describe()} must be f32 of the same size`);
      // Bias correction counts this parameter's own updates, as PyTorch's per-parameter state does:
      // one that first receives a gradient late (a frozen last layer) starts from step 1.
      const t = ++this.paramSteps[i]!;
      updated.push(i);
      const bc1 = 1 - this.beta1 ** t;
      const bc2 = 1 - this.beta2 ** t;
      const { m, v } = this.moments[i]!;
      const rt = p.rt;
      for (const piece of elementPieces(rt, p.size, 4)) {
        const slice = (b: GPUBuffer) => pieceSlice(b, piece, 4);
        rt.dispatch({
          kernel: { shader: ADAMW, entry: 'main' },
          buffers: { param: slice(p.buffer), grad: slice(p.grad.buffer), m: slice(m.buffer), v: slice(v.buffer), control: control ? control.buffer : rt.dummy },
          params: {
            n: piece.count,
            lr: groupLr[this.groupOf[i]!]!,
            beta1: this.beta1,
            beta2: this.beta2,
            // 1−β in float64, then f32 (forming it in f32 from an f32 β2 = 0.999 is 1.3e-5 off).
            oneMinusBeta1: 1 - this.beta1,
            oneMinusBeta2: 1 - this.beta2,
            eps: this.eps,
            weightDecay: this.decayed[i] ? wd : 0,
            biasCorrection1: bc1,
            biasCorrection2: bc2,
            gradScale,
            useControl: control ? 1 : 0,
            okIndex: control ? control.okIndex : 0,
            scaleIndex: control ? control.scaleIndex(i) : 0,
          },
          workgroups: grid1d(piece.count, 256, rt.caps.maxWorkgroupsPerDimension),
          work: { flops: 14 * piece.count, bytes: 28 * piece.count },
        });
      }
    });
    this.lastUpdated = updated;
  }

  /**
   * Takes back the step counters of the last `update`, for a step the GPU skipped (its `control`
   * flag said a gradient was not finite). Moments and parameters were not touched by that step.
   */
  undoStep(): void {
    if (!this.lastUpdated) throw new ReefError('AdamW.undoStep: no update to undo');
    for (const i of this.lastUpdated) this.paramSteps[i]!--;
    this.step--;
    this.lastUpdated = null;
  }

  /** The moment tensors, in parameter order (for checkpoints). */
  state(): { m: Tensor; v: Tensor }[] {
    return this.moments;
  }

  /** The moments by checkpoint key: `${key}.exp_avg` and `${key}.exp_avg_sq` (owned by the optimizer). */
  stateTensors(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    this.keys.forEach((k, i) => {
      out[`${k}.exp_avg`] = this.moments[i]!.m;
      out[`${k}.exp_avg_sq`] = this.moments[i]!.v;
    });
    return out;
  }

  stateMeta(): AdamWStateMeta {
    const paramSteps: Record<string, number> = {};
    this.keys.forEach((k, i) => (paramSteps[k] = this.paramSteps[i]!));
    return { step: this.step, paramSteps };
  }

  /**
   * Restores a checkpoint: the host state and every moment, given as tensors (copied on the GPU) or
   * host arrays of f32 values (uploaded). Every key of `stateTensors()` must be present.
   */
  loadState(meta: AdamWStateMeta, tensors: Record<string, Tensor | ArrayLike<number>>): void {
    if (!Number.isInteger(meta.step) || meta.step < 0) throw new ReefError(`AdamW.loadState: step ${meta.step} is not a non-negative integer`);
    const steps = this.keys.map((k) => {
      const s = meta.paramSteps[k];
      if (s === undefined || !Number.isInteger(s) || s < 0) throw new ReefError(`AdamW.loadState: no valid step count for '${k}'`);
      return s;
    });
    const sources = this.keys.flatMap((k, i) =>
      (['exp_avg', 'exp_avg_sq'] as const).map((what) => {
        const src = tensors[`${k}.${what}`];
        const dst = what === 'exp_avg' ? this.moments[i]!.m : this.moments[i]!.v;
        if (src === undefined) throw new ReefError(`AdamW.loadState: '${k}.${what}' is missing`);
        const n = src instanceof Tensor ? src.size : src.length;
        if (n !== dst.size) throw new ReefError(`AdamW.loadState: '${k}.${what}' has ${n} values, ${dst.describe()} needs ${dst.size}`);
        if (src instanceof Tensor && src.dtype !== 'f32') throw new ReefError(`AdamW.loadState: '${k}.${what}' must be f32`);
        return { src, dst };
      }),
    );
    for (const { src, dst } of sources) {
      if (dst.size === 0) continue;
      if (src instanceof Tensor) dst.rt.copy(src.buffer, 0, dst.buffer, 0, dst.byteSize);
      else dst.rt.write(dst.buffer, src instanceof Float32Array ? src : Float32Array.from(src));
    }
    this.step = meta.step;
    steps.forEach((s, i) => (this.paramSteps[i] = s));
    this.lastUpdated = null;
  }

  dispose(): void {
    for (const { m, v } of this.moments) {
      m.dispose();
      v.dispose();
    }
  }
}

/**
 * DINO's parameter groups from named parameters: 'params' (everything else) and 'last_layer'
 * (names matched by `isLastLayer`, default: containing "last_layer"), both with the
 * 'ndim>1-not-bias' decay rule. Freeze the last layer with `update({ lrScales: { last_layer: 0 } })`.
 */
export function dinoParamGroups(named: readonly (readonly [string, Tensor])[], isLastLayer: (name: string) => boolean = (n) => n.includes('last_layer')): ParamGroup[] {
  const split = (last: boolean): ParamGroup => {
    const chosen = named.filter(([n]) => isLastLayer(n) === last);
    return { name: last ? 'last_layer' : 'params', params: chosen.map(([, p]) => p), names: chosen.map(([n]) => n), decay: 'ndim>1-not-bias' };
  };
  return [split(false), split(true)];
}

function isGroupList(x: readonly Tensor[] | readonly ParamGroup[]): x is readonly ParamGroup[] {
  return x.length > 0 && 'params' in (x[0] as object);
}

function ruleByName(name: string): DecayFn {
  const rule = DECAY_RULES[name as DecayRule];
  if (!rule) throw new ReefError(`AdamW: unknown decay rule '${name}' (known: ${Object.keys(DECAY_RULES).join(', ')})`);
  return rule;
}

function checkScale(s: number, what: string): void {
  if (!(s >= 0 && Number.isFinite(s))) throw new ReefError(`AdamW: ${what} = ${s} must be finite and ≥ 0`);
}
