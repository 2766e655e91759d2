/**
 * float64 reference of a stride-1, zero-padded 3D convolution without bias (MONAI's UnetResBlock
 * convolutions), channels-first, written as the plain sum over the kernel window, and its
 * vector–Jacobian product.
 *   x: [B, Ci, D, H, W], w: [Co, Ci, k, k, k] → [B, Co, D + 2p − k + 1, H + 2p − k + 1, W + 2p − k + 1]
 */
import { arr, type Arr } from './array';

function dims(x: Arr, w: Arr, pad: number) {
  const [B, Ci, D, H, W] = x.shape as [number, number, number, number, number];
  const [Co, , k] = w.shape as [number, number, number];
  return { B, Ci, D, H, W, Co, k, Do: D + 2 * pad - k + 1, Ho: H + 2 * pad - k + 1, Wo: W + 2 * pad - k + 1 };
}

/** Calls `visit(outIndex, xIndex, wIndex)` for every in-bounds product of the convolution. */
function forEachTerm(x: Arr, w: Arr, pad: number, visit: (o: number, xi: number, wi: number) => void): void {
  const { B, Ci, D, H, W, Co, k, Do, Ho, Wo } = dims(x, w, pad);
  for (let b = 0; b < B; b++)
    for (let co = 0; co < Co; co++)
      for (let od = 0; od < Do; od++)
        for (let oh = 0; oh < Ho; oh++)
          for (let ow = 0; ow < Wo; ow++) {
            const o = (((b * Co + co) * Do + od) * Ho + oh) * Wo + ow;
            for (let ci = 0; ci < Ci; ci++)
              for (let kd = 0; kd < k; kd++)
                for (let kh = 0; kh < k; kh++)
                  for (let kw = 0; kw < k; kw++) {
                    const [d, h, ww] = [od + kd - pad, oh + kh - pad, ow + kw - pad];
                    if (d < 0 || d >= D || h < 0 || h >= H || ww < 0 || ww >= W) continue; // zero padding
                    const xi = (((b * Ci + ci) * D + d) * H + h) * W + ww;
                    const wi = (((co * Ci + ci) * k + kd) * k + kh) * k + kw;
                    visit(o, xi, wi);
                  }
          }
}

/** Default padding k // 2 ("same" output size for odd k). */
export function conv3d(x: Arr, w: Arr, pad = Math.floor(w.shape[2]! / 2)): Arr {
  const { B, Co, Do, Ho, Wo } = dims(x, w, pad);
  const out = arr([B, Co, Do, Ho, Wo]);
  forEachTerm(x, w, pad, (o, xi, wi) => (out.data[o]! += x.data[xi]! * w.data[wi]!));
  return out;
}

export function conv3dBackward(x: Arr, w: Arr, g: Arr, pad = Math.floor(w.shape[2]! / 2)): { dx: Arr; dw: Arr } {
  const dx = arr(x.shape);
  const dw = arr(w.shape);
  forEachTerm(x, w, pad, (o, xi, wi) => {
    dx.data[xi]! += g.data[o]! * w.data[wi]!;
    dw.data[wi]! += g.data[o]! * x.data[xi]!;
  });
  return { dx, dw };
}
