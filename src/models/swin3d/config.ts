/**
 * Configurations of MONAI's SwinTransformer (SwinViT) and of the CoralBay encoder (eva's
 * SwinUNETREncoder: SwinViT with use_v2 plus the UNETR encoder blocks), the presets, and the
 * parameter names and shapes each configuration has, in MONAI's state-dict naming.
 */
import type { MergeOrder } from '../../ops/patch-merge.js';
import type { Vec3 } from './window-geometry.js';

export interface SwinViTConfig {
  /** Embedding width of stage 1 (MONAI feature_size); stage i works at featureSize·2^i. */
  featureSize: number;
  inChannels: number;
  depths: readonly number[];
  heads: readonly number[];
  window: Vec3;
  patch: number;
  mlpRatio: number;
  merge: MergeOrder;
  /** A UnetResBlock before each stage (layers1c … layers4c). */
  useV2: boolean;
  /** Hidden states through a non-affine LayerNorm (MONAI's normalize=True). */
  normalize: boolean;
}

export type ModelKind = 'swin-vit' | 'coralbay-encoder';

export interface ModelConfig extends SwinViTConfig {
  kind: ModelKind;
}

/** MONAI's defaults except feature_size (MONAI's class default is 24; eva's encoder uses 48). */
export function swinViTConfig(over: Partial<SwinViTConfig> = {}): SwinViTConfig {
  return {
    featureSize: 48,
    inChannels: 1,
    depths: [2, 2, 2, 2],
    heads: [3, 6, 12, 24],
    window: [7, 7, 7],
    patch: 2,
    mlpRatio: 4,
    merge: 'merging',
    useV2: false,
    normalize: true,
    ...over,
  };
}

export const PRESETS: Record<string, ModelConfig> = {
  /** The shape of ../shared/fixtures/swin-tiny. */
  'swin-tiny': { kind: 'swin-vit', ...swinViTConfig({ featureSize: 12 }) },
  'swin-b': { kind: 'swin-vit', ...swinViTConfig({ featureSize: 48 }) },
  'coralbay-tiny': { kind: 'coralbay-encoder', ...swinViTConfig({ featureSize: 12, useV2: true }) },
  /** CoralBayU96B: 53.16M parameters. */
  'coralbay-b': { kind: 'coralbay-encoder', ...swinViTConfig({ featureSize: 48, useV2: true }) },
  /** CoralBayU96H: 847.28M parameters. */
  'coralbay-h': { kind: 'coralbay-encoder', ...swinViTConfig({ featureSize: 192, useV2: true }) },
};

export function preset(name: string): ModelConfig {
  const p = PRESETS[name];
  if (!p) throw new Error(`unknown model preset '${name}' (have ${Object.keys(PRESETS).join(', ')})`);
  return p;
}

export const SWIN_PREFIX = 'swinViT.';

/** Stage i's width. */
export function stageWidth(cfg: SwinViTConfig, i: number): number {
  return cfg.featureSize * 2 ** i;
}

function resBlockShapes(out: Map<string, number[]>, prefix: string, cin: number, cout: number): void {
  out.set(`${prefix}conv1.conv.weight`, [cout, cin, 3, 3, 3]);
  out.set(`${prefix}conv2.conv.weight`, [cout, cout, 3, 3, 3]);
  if (cin !== cout) out.set(`${prefix}conv3.conv.weight`, [cout, cin, 1, 1, 1]);
}

/** SwinViT's learnable parameters by MONAI name (relative_position_index buffers excluded). */
export function swinViTParamShapes(cfg: SwinViTConfig, prefix = SWIN_PREFIX): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const fs = cfg.featureSize;
  const p = cfg.patch;
  m.set(`${prefix}patch_embed.proj.weight`, [fs, cfg.inChannels, p, p, p]);
  m.set(`${prefix}patch_embed.proj.bias`, [fs]);
  const table = (2 * cfg.window[0] - 1) * (2 * cfg.window[1] - 1) * (2 * cfg.window[2] - 1);
  cfg.depths.forEach((depth, i) => {
    const c = stageWidth(cfg, i);
    const hid = Math.round(c * cfg.mlpRatio);
    if (cfg.useV2) resBlockShapes(m, `${prefix}layers${i + 1}c.0.layer.`, c, c);
    for (let b = 0; b < depth; b++) {
      const q = `${prefix}layers${i + 1}.0.blocks.${b}.`;
      m.set(`${q}norm1.weight`, [c]);
      m.set(`${q}norm1.bias`, [c]);
      m.set(`${q}attn.relative_position_bias_table`, [table, cfg.heads[i]!]);
      m.set(`${q}attn.qkv.weight`, [3 * c, c]);
      m.set(`${q}attn.qkv.bias`, [3 * c]);
      m.set(`${q}attn.proj.weight`, [c, c]);
      m.set(`${q}attn.proj.bias`, [c]);
      m.set(`${q}norm2.weight`, [c]);
      m.set(`${q}norm2.bias`, [c]);
      m.set(`${q}mlp.linear1.weight`, [hid, c]);
      m.set(`${q}mlp.linear1.bias`, [hid]);
      m.set(`${q}mlp.linear2.weight`, [c, hid]);
      m.set(`${q}mlp.linear2.bias`, [c]);
    }
    const d = `${prefix}layers${i + 1}.0.downsample.`;
    m.set(`${d}norm.weight`, [8 * c]);
    m.set(`${d}norm.bias`, [8 * c]);
    m.set(`${d}reduction.weight`, [2 * c, 8 * c]);
  });
  return m;
}

/** The UNETR encoder blocks of the CoralBay encoder: name prefix, input and output channels. */
export function coralBayEncoderBlocks(cfg: SwinViTConfig): { prefix: string; cin: number; cout: number }[] {
  const fs = cfg.featureSize;
  return [
    { prefix: 'encoder1.layer.', cin: cfg.inChannels, cout: fs },
    { prefix: 'encoder2.layer.', cin: fs, cout: fs },
    { prefix: 'encoder3.layer.', cin: 2 * fs, cout: 2 * fs },
    { prefix: 'encoder4.layer.', cin: 4 * fs, cout: 4 * fs },
    { prefix: 'encoder10.layer.', cin: 16 * fs, cout: 16 * fs },
  ];
}

export function paramShapes(cfg: ModelConfig): Map<string, number[]> {
  const m = swinViTParamShapes(cfg);
  if (cfg.kind === 'coralbay-encoder') for (const b of coralBayEncoderBlocks(cfg)) resBlockShapes(m, b.prefix, b.cin, b.cout);
  return m;
}

export function countParams(shapes: Map<string, number[]>): number {
  let n = 0;
  for (const s of shapes.values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

export function describeConfig(cfg: ModelConfig): string {
  const name = cfg.kind === 'coralbay-encoder' ? 'CoralBay encoder' : 'SwinViT';
  return `${name}: feature size ${cfg.featureSize}, depths ${cfg.depths.join(',')}, heads ${cfg.heads.join(',')}, window ${cfg.window.join('×')}, ${cfg.merge}${cfg.useV2 ? ', use_v2' : ''}${cfg.normalize ? '' : ', no normalize'}; ${(countParams(paramShapes(cfg)) / 1e6).toFixed(2)}M parameters`;
}
