/**
 * Swapping the first and last axes of a 3-D C-order array. NIfTI files and InVesalius matrices
 * store x fastest ((z, y, x) in C order); reef's tensors want (x, y, z) with z fastest, and back.
 */

type NumArray = { length: number; [i: number]: number };

/**
 * `src` has C-order shape (n0, n1, n2); `out` gets shape (n2, n1, n0):
 * out[(c*n1 + b)*n0 + a] = src[(a*n1 + b)*n2 + c]. Done in 32×32 tiles per b, so reads and writes
 * both stay in cache.
 */
export function swapAxes02<T extends NumArray>(src: NumArray, n0: number, n1: number, n2: number, out: T): T {
  const T = 32;
  const s0 = n1 * n2;
  const o2 = n1 * n0;
  for (let b = 0; b < n1; b++) {
    for (let a0 = 0; a0 < n0; a0 += T) {
      const a1 = Math.min(a0 + T, n0);
      for (let c0 = 0; c0 < n2; c0 += T) {
        const c1 = Math.min(c0 + T, n2);
        for (let c = c0; c < c1; c++) {
          let s = a0 * s0 + b * n2 + c;
          let o = c * o2 + b * n0 + a0;
          for (let a = a0; a < a1; a++, s += s0) out[o++] = src[s]!;
        }
      }
    }
  }
  return out;
}
