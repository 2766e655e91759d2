/**
 * DINO / DINOv2 projection head:
 *   x → Linear(in, hidden) → GELU → [Linear(hidden, hidden) → GELU]×(nlayers − 2) → Linear(hidden, bottleneck)
 *     → x / max(‖x‖₂, 1e-12) → x·Wᵀ,   W[k] = v[k] / ‖v[k]‖   (weight norm with g fixed at 1)
 * so the scores are cosines between the bottleneck feature and K prototypes. With g fixed the last
 * layer is row-normalised v; the gradient reaches v through the normalisation.
 *
 * Parameter names follow the PyTorch module (nn.Sequential indices skip the GELUs):
 * mlp.0.weight, mlp.0.bias, mlp.2.…, mlp.4.…, last_layer.weight_v ("last_layer" is the group DINO
 * freezes for the first epoch). weight_g is the constant 1 and not a parameter.
 * Init as DINOv2: MLP weights trunc_normal(std 0.02, cut at ±2), biases 0; v keeps nn.Linear's
 * default U(±1/√bottleneck), since the head's init runs before the last layer is made.
 */
import type { Runtime } from '../gpu/runtime.js';
import { ReefError } from '../gpu/errors.js';
import { l2Normalize } from '../ops/l2-normalize.js';
import { matmul } from '../ops/matmul.js';
import { gelu } from '../ops/pointwise.js';
import { makeRng, normalPair, tensor } from '../tensor/create.js';
import { keep, type Tensor } from '../tensor/tensor.js';
import { uniformInit } from './linear.js';
import { Module } from './module.js';

export interface DinoHeadOptions {
  inDim: number;
  /** Prototypes K (default 65536). */
  outDim?: number;
  hiddenDim?: number;
  bottleneckDim?: number;
  /** Linear layers of the MLP (default 3). */
  nlayers?: number;
  seed?: number;
}

/** N(0, std²) cut to [lo, hi] by redrawing (timm / DINO's trunc_normal_: absolute bounds). */
export function truncNormalInit(n: number, std: number, seed: number, lo = -2, hi = 2): Float32Array {
  const rng = makeRng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; ) {
    for (const v of normalPair(rng, std)) {
      if (i < n && v >= lo && v <= hi) out[i++] = v;
    }
  }
  return out;
}

export class DinoHead extends Module {
  readonly inDim: number;
  readonly outDim: number;
  readonly hiddenDim: number;
  readonly bottleneckDim: number;
  /** [out, in] weights and [out] biases of the MLP's linear layers. */
  readonly weights: Tensor[] = [];
  readonly biases: Tensor[] = [];
  /** [outDim, bottleneckDim]: the prototypes before row normalisation. */
  readonly weightV: Tensor;

  constructor(rt: Runtime, opts: DinoHeadOptions) {
    super();
    this.inDim = opts.inDim;
    this.outDim = opts.outDim ?? 65536;
    this.hiddenDim = opts.hiddenDim ?? 2048;
    this.bottleneckDim = opts.bottleneckDim ?? 256;
    const nlayers = opts.nlayers ?? 3;
    if (!(Number.isInteger(nlayers) && nlayers >= 1)) throw new ReefError(`DinoHead: nlayers must be a positive integer, got ${nlayers}`);
    const seed = opts.seed ?? 1;
    const sizes = nlayers === 1 ? [this.inDim, this.bottleneckDim] : [this.inDim, ...new Array<number>(nlayers - 1).fill(this.hiddenDim), this.bottleneckDim];
    for (let i = 0; i + 1 < sizes.length; i++) {
      const [fin, fout] = [sizes[i]!, sizes[i + 1]!];
      this.weights.push(keep(tensor(rt, truncNormalInit(fin * fout, 0.02, seed + 10 * i), [fout, fin], { requiresGrad: true, name: `mlp.${2 * i}.weight` })));
      this.biases.push(keep(tensor(rt, new Float32Array(fout), [fout], { requiresGrad: true, name: `mlp.${2 * i}.bias` })));
    }
    const bound = 1 / Math.sqrt(this.bottleneckDim);
    this.weightV = keep(tensor(rt, uniformInit(this.outDim * this.bottleneckDim, bound, seed + 7919), [this.outDim, this.bottleneckDim], { requiresGrad: true, name: 'last_layer.weight_v' }));
  }

  /** Bottleneck features before normalisation, [..., bottleneck]. */
  mlp(x: Tensor): Tensor {
    let h = x;
    this.weights.forEach((w, i) => {
      const z = matmul(h, w, { transB: true, bias: this.biases[i]! });
      if (h !== x) h.dispose();
      if (i + 1 < this.weights.length) {
        h = gelu(z);
        z.dispose();
      } else h = z;
    });
    return h;
  }

  /** Prototype scores [..., outDim] of features [..., inDim]. */
  forward(x: Tensor): Tensor {
    const h = this.mlp(x);
    const hn = l2Normalize(h, 1e-12);
    h.dispose();
    // weight_norm divides by ‖v‖ with no epsilon (a zero row would be NaN, as in PyTorch).
    const w = l2Normalize(this.weightV, 0);
    const out = matmul(hn, w, { transB: true });
    hn.dispose();
    w.dispose();
    return out;
  }

  namedParameters(): [string, Tensor][] {
    const mlp = this.weights.flatMap((w, i): [string, Tensor][] => [
      [`mlp.${2 * i}.weight`, w],
      [`mlp.${2 * i}.bias`, this.biases[i]!],
    ]);
    return [...mlp, ['last_layer.weight_v', this.weightV]];
  }
}
