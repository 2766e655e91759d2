/**
 * float64 reference of MONAI's UnetResBlock (UnetrBasicBlock with res_block=True; SwinViT's use_v2
 * blocks), channels-first [B, C, D, H, W]:
 *
 *   conv1 3³ (stride 1, zero pad 1, no bias) → InstanceNorm (biased variance, eps 1e-5, no affine)
 *   → LeakyReLU(0.01) → conv2 3³ → InstanceNorm; residual = x, or InstanceNorm(conv3 1³ of x) when
 *   the channel count changes; out = LeakyReLU(h + residual, 0.01).
 *
 * The convolution here is the same plain sum as test/ref/conv3d.ts with the loops reordered (an
 * axpy along W per weight) so that 32³–64³ volumes take a fraction of a second; the two are
 * checked against each other in test/models/coralbay-encoder.test.ts.
 */
import { arr, type Arr } from './array';

export type Weights = (name: string) => Arr;

/** Stride-1 zero-padded ("same", pad k//2) 3D convolution without bias. x: [B, Ci, D, H, W], w: [Co, Ci, k, k, k]. */
export function conv3dSame(x: Arr, w: Arr): Arr {
  const [B, Ci, D, H, W] = x.shape as [number, number, number, number, number];
  const [Co, Ciw, k] = w.shape as [number, number, number];
  if (Ciw !== Ci) throw new Error(`conv3dSame: weight [${w.shape}] does not take ${Ci} input channels`);
  const pad = Math.floor(k / 2);
  const out = arr([B, Co, D, H, W]);
  const xs = x.data;
  const os = out.data;
  const S = D * H * W;
  for (let b = 0; b < B; b++)
    for (let co = 0; co < Co; co++) {
      const ob = (b * Co + co) * S;
      for (let ci = 0; ci < Ci; ci++) {
        const xb = (b * Ci + ci) * S;
        for (let kd = 0; kd < k; kd++)
          for (let kh = 0; kh < k; kh++)
            for (let kw = 0; kw < k; kw++) {
              const wv = w.data[(((co * Ci + ci) * k + kd) * k + kh) * k + kw]!;
              const [dd, dh, dw] = [kd - pad, kh - pad, kw - pad];
              const w0 = Math.max(0, -dw);
              const w1 = Math.min(W, W - dw);
              for (let od = Math.max(0, -dd); od < Math.min(D, D - dd); od++)
                for (let oh = Math.max(0, -dh); oh < Math.min(H, H - dh); oh++) {
                  const o = ob + (od * H + oh) * W;
                  const i = xb + ((od + dd) * H + oh + dh) * W + dw;
                  for (let ow = w0; ow < w1; ow++) os[o + ow] = os[o + ow]! + wv * xs[i + ow]!;
                }
            }
      }
    }
  return out;
}

/** InstanceNorm3d(affine=False): each (b, c) row over D·H·W to mean 0, biased variance 1 (eps inside the sqrt). */
export function instanceNorm(x: Arr, eps = 1e-5): Arr {
  const rows = x.shape[0]! * x.shape[1]!;
  const n = x.data.length / rows;
  const out = arr(x.shape);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += x.data[r * n + i]!;
    m /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x.data[r * n + i]! - m) ** 2;
    const rstd = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) out.data[r * n + i] = (x.data[r * n + i]! - m) * rstd;
  }
  return out;
}

export function leakyRelu(x: Arr, slope = 0.01): Arr {
  return arr(x.shape, x.data.map((v) => (v >= 0 ? v : slope * v)));
}

/** MONAI UnetResBlock; weights `${prefix}conv1.conv.weight`, `conv2…`, and `conv3…` when Ci ≠ Co. */
export function unetResBlock(x: Arr, W: Weights, prefix: string): Arr {
  const w1 = W(`${prefix}conv1.conv.weight`);
  const h = instanceNorm(conv3dSame(leakyRelu(instanceNorm(conv3dSame(x, w1))), W(`${prefix}conv2.conv.weight`)));
  const res = w1.shape[0] === x.shape[1] ? x : instanceNorm(conv3dSame(x, W(`${prefix}conv3.conv.weight`)));
  return leakyRelu(arr(h.shape, h.data.map((v, i) => v + res.data[i]!)));
}

/** [B, D, H, W, C] ↔ [B, C, D, H, W]. */
export function toChannelsFirst(x: Arr): Arr {
  const [B, D, H, W, C] = x.shape as [number, number, number, number, number];
  const S = D * H * W;
  const out = arr([B, C, D, H, W]);
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let c = 0; c < C; c++) out.data[(b * C + c) * S + s] = x.data[(b * S + s) * C + c]!;
  return out;
}

export function toChannelsLast(x: Arr): Arr {
  const [B, C, D, H, W] = x.shape as [number, number, number, number, number];
  const S = D * H * W;
  const out = arr([B, D, H, W, C]);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let s = 0; s < S; s++) out.data[(b * S + s) * C + c] = x.data[(b * C + c) * S + s]!;
  return out;
}
