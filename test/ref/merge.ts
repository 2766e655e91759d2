/**
 * float64 reference of 3D patch merging's gather: pad D, H, W at the end to even sizes, then
 * concatenate x[:, d0::2, h0::2, w0::2, :] for the eight offsets, on channels (channels-last).
 * Offsets as MONAI's three versions (the ≤ 1.4 one reads two sub-volumes twice).
 */
import { arr, type Arr } from './array';

export const ORDERS: Record<string, [number, number, number][]> = {
  merging: [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 1]],
  'merging-1.5': [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]],
  mergingv2: [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1], [1, 0, 0], [1, 0, 1], [1, 1, 0], [1, 1, 1]],
};

/** Calls visit(outIndex, inIndex) for every output element read from x (padding reads nothing). */
function forEachRead(shape: readonly number[], order: string, visit: (o: number, i: number) => void): number[] {
  const [B, D, H, W, C] = shape as [number, number, number, number, number];
  const [Do, Ho, Wo] = [Math.ceil(D / 2), Math.ceil(H / 2), Math.ceil(W / 2)];
  const offs = ORDERS[order]!;
  for (let b = 0; b < B; b++)
    for (let d = 0; d < Do; d++)
      for (let h = 0; h < Ho; h++)
        for (let w = 0; w < Wo; w++)
          offs.forEach(([d0, h0, w0], k) => {
            const [sd, sh, sw] = [2 * d + d0, 2 * h + h0, 2 * w + w0];
            for (let c = 0; c < C; c++) {
              const o = (((b * Do + d) * Ho + h) * Wo + w) * 8 * C + k * C + c;
              if (sd < D && sh < H && sw < W) visit(o, (((b * D + sd) * H + sh) * W + sw) * C + c);
            }
          });
  return [B, Do, Ho, Wo, 8 * C];
}

export function mergeGather(x: Arr, order: string): Arr {
  const shape = forEachRead(x.shape, order, () => undefined);
  const out = arr(shape);
  forEachRead(x.shape, order, (o, i) => (out.data[o] = x.data[i]!));
  return out;
}

export function mergeGatherBackward(xShape: readonly number[], g: Arr, order: string): Arr {
  const dx = arr(xShape);
  forEachRead(xShape, order, (o, i) => (dx.data[i]! += g.data[o]!));
  return dx;
}
