/**
 * iBOT masks in 3D. Blocks are drawn on the patch-embed grid (the crop / 2) as DINOv2 draws them on
 * its 2D patch grid, with a second aspect ratio for the third axis: each block has a random volume
 * U(minBlock, what is left) and log-uniform aspect ratios in [0.3, 1/0.3], up to 10 tries per block.
 * Half the global crops are masked, crop i with a ratio drawn from the i-th of n equal bins of
 * [0.1, 0.5] (the bins shuffled over the crops). The loss reads the mask max-pooled to the grid of
 * the stage whose tokens it uses (hidden_states[3], the crop / 16).
 */
import type { Rng } from '../data/rng.js';

export type Grid3 = readonly [number, number, number];

export interface BlockMaskOptions {
  /** Smallest block, in patches (DINOv2: 4). */
  minBlock?: number;
  /** Largest masked fraction of one crop (DINOv2: 0.5). */
  maxFraction?: number;
  /** Log-uniform aspect ratio range of a block (DINOv2: 0.3 to 1/0.3). */
  aspect?: readonly [number, number];
  /** Tries per block before giving up (DINOv2: 10). */
  tries?: number;
}

export interface IbotMaskOptions extends BlockMaskOptions {
  /** Fraction of the global crops that get a mask (0.5). */
  probability?: number;
  /** Range of masked ratios, split into equal bins over the masked crops ([0.1, 0.5]). */
  ratio?: readonly [number, number];
}

/** Masks `target` patches of a grid with random cuboids; returns the mask (1 = masked) in C order. */
export function blockMask(grid: Grid3, target: number, rng: Rng, o: BlockMaskOptions = {}): Uint8Array {
  const [D, H, W] = grid;
  const n = D * H * W;
  const mask = new Uint8Array(n);
  const minBlock = o.minBlock ?? 4;
  const maxBlock = Math.floor((o.maxFraction ?? 0.5) * n);
  const [aLo, aHi] = o.aspect ?? [0.3, 1 / 0.3];
  const tries = o.tries ?? 10;
  const goal = Math.min(target, maxBlock);
  let masked = 0;
  while (masked < goal) {
    const room = Math.min(goal - masked, maxBlock);
    let added = 0;
    for (let t = 0; t < tries && added === 0; t++) {
      if (room < minBlock) break;
      const volume = rng.uniform(minBlock, room);
      const ad = Math.exp(rng.uniform(Math.log(aLo), Math.log(aHi)));
      const ah = Math.exp(rng.uniform(Math.log(aLo), Math.log(aHi)));
      const side = Math.cbrt(volume);
      const d = Math.round(side * Math.sqrt(ad));
      const h = Math.round(side * Math.sqrt(ah));
      const w = d > 0 && h > 0 ? Math.round(volume / (d * h)) : 0;
      if (d < 1 || h < 1 || w < 1 || d >= D || h >= H || w >= W) continue;
      const z0 = rng.int(D - d + 1);
      const y0 = rng.int(H - h + 1);
      const x0 = rng.int(W - w + 1);
      let fresh = 0;
      for (let z = z0; z < z0 + d; z++) for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) fresh += mask[(z * H + y) * W + x]! ^ 1;
      if (fresh === 0 || fresh > room) continue;
      for (let z = z0; z < z0 + d; z++) for (let y = y0; y < y0 + h; y++) mask.fill(1, (z * H + y) * W + x0, (z * H + y) * W + x0 + w);
      added = fresh;
    }
    if (added === 0) break;
    masked += added;
  }
  return mask;
}

/**
 * Masks for `crops` global crops on `grid`: half of them (rounded down) get block masks with ratios
 * from consecutive bins of the ratio range, in a shuffled order; the rest get none (all zeros).
 */
export function ibotMasks(crops: number, grid: Grid3, rng: Rng, o: IbotMaskOptions = {}): Uint8Array[] {
  const n = grid[0] * grid[1] * grid[2];
  const masked = Math.floor(crops * (o.probability ?? 0.5));
  const [lo, hi] = o.ratio ?? [0.1, 0.5];
  const masks: Uint8Array[] = [];
  for (let i = 0; i < masked; i++) {
    const ratio = rng.uniform(lo + ((hi - lo) * i) / masked, lo + ((hi - lo) * (i + 1)) / masked);
    masks.push(blockMask(grid, Math.floor(n * ratio), rng, o));
  }
  for (let i = masked; i < crops; i++) masks.push(new Uint8Array(n));
  // Fisher–Yates: which crops are masked, and with which ratio, is random.
  for (let i = crops - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [masks[i], masks[j]] = [masks[j]!, masks[i]!];
  }
  return masks;
}

/**
 * Max-pools a mask by `factor` per axis (the last block of an axis may be partial, as the stages'
 * own padding makes it): a coarse token is masked when any patch under it is.
 */
export function poolMask(mask: Uint8Array, grid: Grid3, factor: number): { mask: Uint8Array; grid: Grid3 } {
  const [D, H, W] = grid;
  const out: Grid3 = [Math.ceil(D / factor), Math.ceil(H / factor), Math.ceil(W / factor)];
  const pooled = new Uint8Array(out[0] * out[1] * out[2]);
  for (let z = 0; z < D; z++) {
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (mask[(z * H + y) * W + x]) pooled[(Math.floor(z / factor) * out[1] + Math.floor(y / factor)) * out[2] + Math.floor(x / factor)] = 1;
      }
    }
  }
  return { mask: pooled, grid: out };
}
