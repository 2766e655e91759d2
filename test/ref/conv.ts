/**
 * float64 reference of a stride = kernel 3D convolution with right zero-padding (MONAI's PatchEmbed),
 * written as the plain sum over the kernel window, and its vector–Jacobian product.
 * x: [B, C, D, H, W], w: [E, C, p, p, p], bias: [E] → channels-last [B, D', H', W', E].
 */
import { arr, type Arr } from './array';

function dims(x: Arr, w: Arr, p: number) {
  const [B, C, D, H, W] = x.shape as [number, number, number, number, number];
  const E = w.shape[0]!;
  const [Do, Ho, Wo] = [Math.ceil(D / p), Math.ceil(H / p), Math.ceil(W / p)];
  return { B, C, D, H, W, E, Do, Ho, Wo };
}

/** Calls `visit(outIndex, xIndex, wIndex, e)` for every in-bounds product of the convolution. */
function forEachTerm(x: Arr, w: Arr, p: number, visit: (o: number, xi: number, wi: number) => void): void {
  const { B, C, D, H, W, E, Do, Ho, Wo } = dims(x, w, p);
  for (let b = 0; b < B; b++)
    for (let od = 0; od < Do; od++)
      for (let oh = 0; oh < Ho; oh++)
        for (let ow = 0; ow < Wo; ow++)
          for (let e = 0; e < E; e++) {
            const o = (((b * Do + od) * Ho + oh) * Wo + ow) * E + e;
            for (let c = 0; c < C; c++)
              for (let kd = 0; kd < p; kd++)
                for (let kh = 0; kh < p; kh++)
                  for (let kw = 0; kw < p; kw++) {
                    const [d, h, ww] = [od * p + kd, oh * p + kh, ow * p + kw];
                    if (d >= D || h >= H || ww >= W) continue; // zero padding
                    const xi = (((b * C + c) * D + d) * H + h) * W + ww;
                    const wi = (((e * C + c) * p + kd) * p + kh) * p + kw;
                    visit(o, xi, wi);
                  }
          }
}

export function patchConv3d(x: Arr, w: Arr, bias: Arr | null, p: number): Arr {
  const { B, E, Do, Ho, Wo } = dims(x, w, p);
  const out = arr([B, Do, Ho, Wo, E]);
  forEachTerm(x, w, p, (o, xi, wi) => (out.data[o]! += x.data[xi]! * w.data[wi]!));
  if (bias) for (let o = 0; o < out.data.length; o++) out.data[o]! += bias.data[o % E]!;
  return out;
}

export function patchConv3dBackward(x: Arr, w: Arr, g: Arr, p: number): { dx: Arr; dw: Arr; dbias: Arr } {
  const E = w.shape[0]!;
  const dx = arr(x.shape);
  const dw = arr(w.shape);
  const dbias = arr([E]);
  forEachTerm(x, w, p, (o, xi, wi) => {
    dx.data[xi]! += g.data[o]! * w.data[wi]!;
    dw.data[wi]! += g.data[o]! * x.data[xi]!;
  });
  for (let o = 0; o < g.data.length; o++) dbias.data[o % E]! += g.data[o]!;
  return { dx, dw, dbias };
}
