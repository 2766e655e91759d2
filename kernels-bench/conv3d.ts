/**
 * Conv3d at the shapes of a `tiny` DINO step (CoralBay fs 12: the UNETR and use_v2 blocks of
 * 2 × 32³ global and 4 × 16³ local crops, batch 2), per variant: GPU time of the forward, dx and
 * dW from timestamp queries (all of a pass's dispatches, weight rearrangement and chunk sums
 * included), medians over repeats that alternate the variants. `perStep` says how often a step
 * runs each pass at that shape, so the table also gives each variant's conv3d time per step.
 */
import type { Runtime } from '../src/gpu/runtime.js';
import { conv3d, CONV3D_VARIANTS, type Conv3dVariant, type RowsTiles } from '../src/ops/conv3d.js';
import { backward } from '../src/tensor/backward.js';
import { randn } from '../src/tensor/create.js';
import { noGrad } from '../src/tensor/grad-mode.js';
import type { Tensor } from '../src/tensor/tensor.js';

export interface ConvShape {
  name: string;
  x: [number, number, number, number, number];
  co: number;
  k: number;
  /** Passes of this shape in one tiny step: forward, dx, dW. */
  perStep: [number, number, number];
}

export const TINY_CONV_SHAPES: ConvShape[] = [
  { name: 'enc0 conv1, globals', x: [4, 1, 32, 32, 32], co: 12, k: 3, perStep: [2, 0, 1] },
  { name: 'enc0 conv3 (1³), globals', x: [4, 1, 32, 32, 32], co: 12, k: 1, perStep: [2, 0, 1] },
  { name: 'enc0 conv2, globals', x: [4, 12, 32, 32, 32], co: 12, k: 3, perStep: [2, 1, 1] },
  { name: 'enc1 / layers1c, globals', x: [4, 12, 16, 16, 16], co: 12, k: 3, perStep: [8, 4, 4] },
  { name: 'enc0 conv1, locals', x: [8, 1, 16, 16, 16], co: 12, k: 3, perStep: [1, 0, 1] },
  { name: 'enc0 conv3 (1³), locals', x: [8, 1, 16, 16, 16], co: 12, k: 1, perStep: [1, 0, 1] },
  { name: 'enc0 conv2, locals', x: [8, 12, 16, 16, 16], co: 12, k: 3, perStep: [1, 1, 1] },
  { name: 'enc1 / layers1c, locals', x: [8, 12, 8, 8, 8], co: 12, k: 3, perStep: [4, 4, 4] },
  { name: 'enc2 / layers2c, globals', x: [4, 24, 8, 8, 8], co: 24, k: 3, perStep: [8, 4, 4] },
  { name: 'enc2 / layers2c, locals', x: [8, 24, 4, 4, 4], co: 24, k: 3, perStep: [4, 4, 4] },
  { name: 'enc3 / layers3c, globals', x: [4, 48, 4, 4, 4], co: 48, k: 3, perStep: [8, 4, 4] },
  { name: 'enc3 / layers3c, locals', x: [8, 48, 2, 2, 2], co: 48, k: 3, perStep: [4, 4, 4] },
];

/** A variant, optionally with rows tile constants (a sweep); named e.g. `rows-sg` or `rows-sg 16x3`. */
export interface ConvConfig {
  variant: Conv3dVariant;
  tiles?: RowsTiles;
}

export const configName = (c: ConvConfig) => (c.tiles ? `${c.variant} ${c.tiles.TW ?? '-'}x${c.tiles.V ?? '-'}` : c.variant);

/** `rows-sg:16x3` → rows-sg with TW 16, V 3; `gemm` → gemm. */
export function parseConvConfig(spec: string): ConvConfig {
  const [variant, tiles] = spec.split(':') as [Conv3dVariant, string | undefined];
  if (!CONV3D_VARIANTS.includes(variant)) throw new Error(`unknown conv3d variant '${variant}'`);
  if (!tiles) return { variant };
  const [tw, v] = tiles.split('x').map((n) => (n === '' || n === '-' ? undefined : Number(n)));
  return { variant, tiles: { ...(tw ? { TW: tw } : {}), ...(v ? { V: v } : {}) } };
}

export interface ConvRow {
  shape: ConvShape;
  config: string;
  /** Median GPU ms of one forward, dx, dW (NaN where the step never runs that pass). */
  ms: [number, number, number];
  flops: number;
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function gpuMs(rt: Runtime, fn: () => void): Promise<number> {
  await rt.sync();
  await rt.profiler!.reset();
  fn();
  const rows = await rt.profile();
  return rows.reduce((s, r) => s + (r.totalMs ?? 0), 0);
}

/** One pass's GPU time: 0 forward, 1 dx, 2 dW. */
async function passMs(rt: Runtime, cfg: ConvConfig, pass: 0 | 1 | 2, x: Tensor, w: Tensor, dy: Tensor): Promise<number> {
  const opts = { variant: cfg.variant, ...(cfg.tiles ? { rowsTiles: cfg.tiles } : {}) };
  if (pass === 0) {
    let y: Tensor | null = null;
    const ms = await gpuMs(rt, () => {
      y = noGrad(() => conv3d(x, w, opts));
    });
    y!.dispose();
    return ms;
  }
  x.requiresGrad = pass === 1;
  w.requiresGrad = pass === 2;
  const y = conv3d(x, w, opts);
  const ms = await gpuMs(rt, () => backward(y, dy));
  y.dispose();
  for (const t of [x, w]) {
    t.grad?.dispose();
    t.grad = null;
  }
  return ms;
}

export async function benchTinyConvs(rt: Runtime, o: { reps?: number; shapes?: ConvShape[]; configs?: ConvConfig[]; log?: (l: string) => void } = {}): Promise<ConvRow[]> {
  if (!rt.profiler?.timed) throw new Error('benchTinyConvs needs a runtime profiling with timestamp queries');
  const log = o.log ?? console.log;
  const variants = o.configs ?? CONV3D_VARIANTS.map((variant) => ({ variant }));
  const reps = o.reps ?? 5;
  const out: ConvRow[] = [];
  for (const s of o.shapes ?? TINY_CONV_SHAPES) {
    const [B, Ci, D, H, W] = s.x;
    const x = randn(rt, s.x, { seed: 1 });
    const w = randn(rt, [s.co, Ci, s.k, s.k, s.k], { seed: 2, std: 0.1 });
    const dy = randn(rt, [B, s.co, D, H, W], { seed: 3 });
    const times = variants.map(() => [[], [], []] as number[][]);
    try {
      for (let r = 0; r <= reps; r++) {
        for (const [vi, v] of variants.entries()) {
          for (const pass of [0, 1, 2] as const) {
            if (s.perStep[pass] === 0) continue;
            const ms = await passMs(rt, v, pass, x, w, dy);
            if (r > 0) times[vi]![pass]!.push(ms); // repeat 0 compiles
          }
        }
      }
    } finally {
      for (const t of [x, w, dy]) t.dispose();
    }
    const flops = 2 * B * D * H * W * s.co * Ci * s.k ** 3;
    for (const [vi, v] of variants.entries()) {
      const ms = times[vi]!.map(median) as [number, number, number];
      out.push({ shape: s, config: configName(v), ms, flops });
      const cell = (i: number) => (Number.isNaN(ms[i]!) ? '-' : `${ms[i]!.toFixed(1)} ms (${(flops / ms[i]! / 1e6).toFixed(2)} GFLOP/s)`);
      log(`${s.name} [${s.x.join('×')}]→${s.co} k${s.k} ${configName(v)}: fwd ${cell(0)}, dx ${cell(1)}, dW ${cell(2)}`);
    }
  }
  // Markdown: per shape and pass, each configuration's median ms, GFLOP/s and GB/s (x, w and y moved
  // once) and its speed against the first configuration.
  const names = variants.map(configName);
  log(`\n| shape | pass | ${names.map((n) => `${n} ms | GFLOP/s | GB/s | × ${names[0]}`).join(' | ')} |`);
  log(`|---|---|${names.map(() => '---:|---:|---:|---:').join('|')}|`);
  for (const s of o.shapes ?? TINY_CONV_SHAPES) {
    const [B, Ci, D, H, W] = s.x;
    const bytes = 4 * (B * Ci * D * H * W + B * s.co * D * H * W + s.co * Ci * s.k ** 3);
    for (const [pass, label] of ['fwd', 'dx', 'dW'].entries()) {
      if (s.perStep[pass] === 0) continue;
      const rs = names.map((n) => out.find((r) => r.shape === s && r.config === n)!);
      const base = rs[0]!.ms[pass]!;
      const cells = rs.map((r) => {
        const ms = r.ms[pass]!;
        return `${ms.toFixed(1)} | ${(r.flops / ms / 1e6).toFixed(2)} | ${(bytes / ms / 1e6).toFixed(2)} | ${(base / ms).toFixed(2)}`;
      });
      log(`| ${s.name} [${s.x.join('×')}]→${s.co} k${s.k} | ${label} | ${cells.join(' | ')} |`);
    }
  }
  for (const v of variants.map(configName)) {
    const step = out.filter((r) => r.config === v).reduce((t, r) => t + r.ms.reduce((a, m, i) => a + (Number.isNaN(m) ? 0 : m * r.shape.perStep[i]!), 0), 0);
    log(`${v}: conv3d GPU time per tiny step at these shapes ${step.toFixed(0)} ms`);
  }
  return out;
}
