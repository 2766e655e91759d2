/**
 * The strided copy under every permute, slice, concat and expand, per kernel variant (`strided`,
 * one element per invocation; `runs`, runs of the last axis per invocation for CPU adapters),
 * against a host loop over the index space: permutes of odd shapes up to rank 8, offsets, stride-0
 * (broadcast) axes, extent-1 axes, axes that merge, runs shorter than RUN, accumulation into a
 * destination whose other elements must stay untouched, and f16 storage. Data movement: exact.
 */
import { describe, expect, it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { expectNoLeak } from '../support/compare';
import { makeRng, type Rng } from '../ref/array';
import { copyStrided, copyVariant, COPY_VARIANTS, simplifyCopy, type CopyVariant, type StridedCopy } from '../../src/ops/shape';
import { tensor, type Runtime } from '../../src/index';

const rt: Runtime = await testRuntime();

interface Case {
  name: string;
  srcSize: number;
  dstSize: number;
  copy: StridedCopy;
}

function hostCopy(src: Float32Array, dst: Float32Array, c: StridedCopy): Float32Array {
  const out = Float32Array.from(dst);
  const n = c.shape.reduce((p, d) => p * d, 1);
  for (let i = 0; i < n; i++) {
    let rest = i;
    let si = c.inOffset ?? 0;
    let di = c.outOffset ?? 0;
    for (let d = c.shape.length - 1; d >= 0; d--) {
      const coord = rest % c.shape[d]!;
      rest = Math.floor(rest / c.shape[d]!);
      si += coord * c.inStride[d]!;
      di += coord * c.outStride[d]!;
    }
    out[di] = c.accumulate ? Math.fround(out[di]! + src[si]!) : src[si]!;
  }
  return out;
}

const contiguous = (shape: readonly number[]) => shape.map((_, i) => shape.slice(i + 1).reduce((p, d) => p * d, 1));

/** A permute of `shape` by `perm` (input strides permuted, output contiguous). */
function permuteCase(shape: number[], perm: number[]): Case {
  const s = contiguous(shape);
  const outShape = perm.map((p) => shape[p]!);
  const n = shape.reduce((p, d) => p * d, 1);
  return { name: `permute [${shape}] by [${perm}]`, srcSize: n, dstSize: n, copy: { shape: outShape, inStride: perm.map((p) => s[p]!), outStride: contiguous(outShape) } };
}

const cases: Case[] = [
  permuteCase([3, 5, 7], [2, 0, 1]),
  permuteCase([2, 5, 3, 4, 7], [0, 4, 1, 2, 3]), // channels-last → channels-first
  permuteCase([2, 3, 4, 5, 6], [0, 2, 3, 4, 1]), // channels-first → channels-last
  permuteCase([2, 3, 1, 5, 2, 3, 2, 3], [0, 1, 4, 7, 2, 5, 3, 6]), // rank 8, an extent-1 axis
  permuteCase([4, 9, 11], [0, 1, 2]), // identity: merges into one run
  // slice of a [5, 7, 13] tensor: [1:4, 2:7, 3:12]
  { name: 'slice [5,7,13][1:4,2:7,3:12]', srcSize: 5 * 7 * 13, dstSize: 3 * 5 * 9, copy: { shape: [3, 5, 9], inOffset: 91 + 26 + 3, inStride: [91, 13, 1], outStride: [45, 9, 1] } },
  // q of a [2, 3, 4, 5, 3·6] qkv projection (rows of 18, q at 0…5)
  { name: 'q of a packed qkv', srcSize: 2 * 3 * 4 * 5 * 18, dstSize: 2 * 3 * 4 * 5 * 6, copy: { shape: [2, 3, 4, 5, 6], inOffset: 0, inStride: [1080, 360, 90, 18, 1], outStride: [360, 120, 30, 6, 1] } },
  // concat part written at an offset of a larger output
  { name: 'concat part [3, 10] at column 4 of [3, 17]', srcSize: 30, dstSize: 51, copy: { shape: [3, 10], inStride: [10, 1], outOffset: 4, outStride: [17, 1] } },
  // broadcast of [3, 5, 1, 1] to [3, 5, 6, 11] (mean backward)
  { name: 'expand [3,5,1,1] → [3,5,6,11]', srcSize: 15, dstSize: 3 * 5 * 66, copy: { shape: [3, 5, 6, 11], inStride: [5, 1, 0, 0], outStride: [330, 66, 11, 1] } },
  // broadcast along the last axis
  { name: 'expand [4, 1] → [4, 19]', srcSize: 4, dstSize: 76, copy: { shape: [4, 19], inStride: [1, 0], outStride: [19, 1] } },
  // accumulate a [6, 5] block into columns 2…6 of a [6, 9] tensor (a gather's backward)
  { name: 'accumulate into a block', srcSize: 30, dstSize: 54, copy: { shape: [6, 5], inStride: [5, 1], outOffset: 2, outStride: [9, 1], accumulate: true } },
  { name: 'one element', srcSize: 3, dstSize: 2, copy: { shape: [1, 1], inOffset: 2, inStride: [1, 1], outOffset: 1, outStride: [1, 1] } },
];

function rand(n: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal());
}

async function run(c: Case, variant: CopyVariant, rng: Rng, dtype: 'f32' | 'f16' = 'f32'): Promise<void> {
  // f16 storage: values that are exact in binary16 (multiples of 1/8 below 64).
  const gen = (n: number) => (dtype === 'f16' ? Float32Array.from({ length: n }, () => Math.round(rng.normal() * 64) / 8) : rand(n, rng));
  const srcV = gen(c.srcSize);
  const dstV = gen(c.dstSize);
  await expectNoLeak(rt, async () => {
    const src = tensor(rt, srcV, [c.srcSize], { dtype });
    const dst = tensor(rt, dstV, [c.dstSize], { dtype });
    copyStrided(src, dst, { ...c.copy, variant });
    const got = await dst.read();
    expect(Array.from(got)).toEqual(Array.from(hostCopy(srcV, dstV, c.copy)));
    src.dispose();
    dst.dispose();
  });
}

describe.each(COPY_VARIANTS.map((v) => [v]))('strided copy, variant %s', (variant) => {
  cases.forEach((c, i) => {
    it(c.name, async () => {
      await run(c, variant as CopyVariant, makeRng(400 + i));
    });
  });
  it.skipIf(!rt.caps.f16)('f16 storage: channels-last → channels-first and an accumulating block', async () => {
    await run(cases[1]!, variant as CopyVariant, makeRng(420), 'f16');
    await run(cases[10]!, variant as CopyVariant, makeRng(421), 'f16');
  });
});

describe('strided copy plan', () => {
  it('drops extent-1 axes and merges axes contiguous on both sides', () => {
    expect(simplifyCopy([2, 1, 3, 4], [12, 7, 4, 1], [12, 12, 4, 1])).toEqual({ shape: [24], inStride: [1], outStride: [1] });
    expect(simplifyCopy([2, 3, 4], [1, 8, 2], [12, 4, 1])).toEqual({ shape: [2, 12], inStride: [1, 2], outStride: [12, 1] });
    expect(simplifyCopy([2, 3, 4], [1, 2, 6], [12, 4, 1])).toEqual({ shape: [2, 3, 4], inStride: [1, 2, 6], outStride: [12, 4, 1] });
    expect(simplifyCopy([3, 5, 6, 11], [5, 1, 0, 0], [330, 66, 11, 1])).toEqual({ shape: [15, 66], inStride: [1, 0], outStride: [66, 1] });
    expect(simplifyCopy([1, 1], [1, 1], [1, 1])).toEqual({ shape: [1], inStride: [0], outStride: [0] });
  });

  it('runs on CPU adapters, strided on GPUs, REEF_COPY forces either', () => {
    const fake = (isCpu: boolean, env?: string) => ({ caps: { isCpu }, host: { env: (n: string) => (n === 'REEF_COPY' ? env : undefined) } }) as unknown as Runtime;
    expect(copyVariant(fake(true))).toBe('runs');
    expect(copyVariant(fake(false))).toBe('strided');
    expect(copyVariant(fake(false, 'runs'))).toBe('runs');
    expect(copyVariant(fake(true), 'strided')).toBe('strided');
    expect(() => copyVariant(fake(true, 'fast'))).toThrow(/REEF_COPY=fast/);
  });
});
