/**
 * The float64 SwinViT reference (test/ref/swin.ts) against the golden swin-tiny fixture: PyTorch's
 * MONAI SwinTransformer (feature size 12, depths 2,2,2,2, heads 3,6,12,24, window 7, `merging`),
 * all five hidden states. This pins down every MONAI quirk the GPU kernels must reproduce: padding
 * after norm1, shift direction, window order, the −100 mask, the bias index and its [:n, :n] slice.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadNifti } from '../../src/data/nifti-file';
import { fileSource } from '../../src/io/node-file';
import { readHeader, readTensor } from '../../src/io/safetensors';
import { arr, maxRelError, type Arr } from '../ref/array';
import { swinViT } from '../ref/swin';

const FIXTURE = new URL('../../../shared/fixtures/swin-tiny', import.meta.url).pathname;
const dir = existsSync(`${FIXTURE}/weights.safetensors`) ? FIXTURE : '/work/shared/fixtures/swin-tiny';
const has = existsSync(`${dir}/weights.safetensors`);
if (!has) console.log(`swin-tiny reference test skipped: fixture not found at ${FIXTURE}`);

async function loadAll(path: string): Promise<Map<string, Arr>> {
  const src = await fileSource(path);
  try {
    const header = await readHeader(src, path);
    const out = new Map<string, Arr>();
    for (const key of header.tensors.keys()) {
      const t = await readTensor(src, header, key);
      out.set(key, arr(t.shape, t.data as Float32Array));
    }
    return out;
  } finally {
    await src.close();
  }
}

describe('float64 SwinViT reference vs PyTorch (swin-tiny fixture)', () => {
  it.skipIf(!has)('all five hidden states agree', async () => {
    const weights = await loadAll(`${dir}/weights.safetensors`);
    const hidden = await loadAll(`${dir}/hidden.safetensors`);
    const vol = await loadNifti(`${dir}/input.nii`);
    const W = (name: string) => {
      const t = weights.get(name);
      if (!t) throw new Error(`weight ${name} missing`);
      return t;
    };
    const x = arr([1, 1, ...vol.shape], vol.data);
    const ours = swinViT(x, W, [2, 2, 2, 2], [3, 6, 12, 24]);
    ours.forEach((h, i) => {
      const ref = hidden.get(`hidden_states.${i}`)!;
      // ours is channels-last [1, D, H, W, C]; the fixture is channels-first [1, C, D, H, W]
      const [, D, H, Wd, C] = h.shape as [number, number, number, number, number];
      expect([1, C, D, H, Wd]).toEqual(ref.shape);
      const cf = new Float64Array(h.data.length);
      for (let c = 0; c < C; c++) for (let s = 0; s < D * H * Wd; s++) cf[c * D * H * Wd + s] = h.data[s * C + c]!;
      const err = maxRelError(cf, ref.data);
      console.log(`hidden_states.${i} [${ref.shape}]: max rel error ${err.toExponential(2)}`);
      expect(err).toBeLessThan(1e-5);
    });
  });
});
