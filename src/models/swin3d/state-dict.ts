/**
 * Loading MONAI SwinViT / CoralBay encoder state dicts (safetensors or PyTorch `.pt`/`.pth`) onto
 * the GPU: checkpoint keys are mapped to the canonical names of `paramShapes`, the configuration is
 * inferred from the shapes, and the whole checkpoint is checked against that configuration BEFORE
 * any GPU buffer is allocated, so a wrong file fails with one message listing every problem instead
 * of half-loading. Tensors are then read and uploaded one at a time: an 847M-parameter file never
 * needs more host memory than its largest tensor.
 */
import { ReefError } from '../../gpu/errors.js';
import type { Runtime } from '../../gpu/runtime.js';
import type { MergeOrder } from '../../ops/patch-merge.js';
import { readHeader, readTensor, type ByteSource, type Dtype } from '../../io/safetensors.js';
import { readTorchArchive, readTorchTensor } from '../../io/torch-pt.js';
import { tensor } from '../../tensor/create.js';
import type { Tensor } from '../../tensor/tensor.js';
import { describeConfig, paramShapes, SWIN_PREFIX, type ModelConfig } from './config.js';
import type { WeightLookup } from './swin-vit.js';

export type { WeightLookup };

// ---------------------------------------------------------------------------------------------
// Key names

/** Wrappers that training code adds around a model's own names (DataParallel, eva/DINO backbones). */
const WRAPPERS = ['module.', 'backbone.'];
/** A SwinViT key without its `swinViT.` prefix (a bare MONAI SwinTransformer state dict). */
const BARE_SWIN = /^(patch_embed\.|layers\d+c?\.)/;

/**
 * The canonical (`paramShapes`) name of a checkpoint key, or null for keys to ignore. Unknown keys
 * pass through unchanged so validation reports them as unexpected rather than dropping them.
 */
export function canonicalKey(key: string): string | null {
  let k = key;
  for (let stripped = true; stripped; ) {
    stripped = false;
    for (const w of WRAPPERS) {
      if (k.startsWith(w)) {
        k = k.slice(w.length);
        stripped = true;
      }
    }
  }
  // A buffer MONAI recomputes from the window size; it carries no learned values.
  if (k.endsWith('relative_position_index')) return null;
  if (BARE_SWIN.test(k)) k = SWIN_PREFIX + k;
  // timm-style MLP names for MONAI's linear1/linear2.
  return k.replace(/\.mlp\.fc([12])\./, '.mlp.linear$1.');
}

// ---------------------------------------------------------------------------------------------
// Configuration inference

export interface InferOptions {
  /** The source's name, for error messages. */
  name?: string;
  /** Not visible in the weights (MONAI ≤ 1.4 `merging` is the default; see spec §2.9). */
  merge?: MergeOrder;
  /** Not visible in the weights (proj_out has no parameters); default true. */
  normalize?: boolean;
}

/**
 * The model configuration that the shapes imply (keys canonical). The window is inferred as a cube
 * (a table of (2w−1)³ rows); merge order and normalize cannot be seen in weights and come from `opts`.
 */
export function inferConfig(shapes: ReadonlyMap<string, readonly number[]>, opts: InferOptions = {}): ModelConfig {
  const name = opts.name ?? 'checkpoint';
  const fail = (msg: string) => new ReefError(`${name}: cannot infer the model configuration: ${msg}`);
  const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

  const embedKey = `${SWIN_PREFIX}patch_embed.proj.weight`;
  const embed = shapes.get(embedKey);
  if (!embed) {
    const some = [...shapes.keys()].slice(0, 5).join(', ');
    throw fail(`no '${embedKey}', so this is not a MONAI SwinViT or CoralBay encoder state dict (its keys begin: ${some || 'none'})`);
  }
  const [featureSize, inChannels, p, p1, p2] = embed;
  if (embed.length !== 5 || p !== p1 || p !== p2 || !featureSize || !inChannels || !p) {
    throw fail(`'${embedKey}' is ${fmt(embed)}, not [feature_size, in_channels, p, p, p]`);
  }

  // Stages and their blocks, from the key names.
  const blocks = new Map<number, Set<number>>();
  let useV2 = false;
  for (const key of shapes.keys()) {
    const m = /^swinViT\.layers(\d+)(c?)\.0\.(?:blocks\.(\d+)\.)?/.exec(key);
    if (!m) continue;
    if (m[2]) {
      useV2 = true;
      continue;
    }
    const stage = Number(m[1]);
    if (!blocks.has(stage)) blocks.set(stage, new Set());
    if (m[3] !== undefined) blocks.get(stage)!.add(Number(m[3]));
  }
  const stages = blocks.size;
  if (stages === 0) throw fail('no swinViT.layersN.0.* keys');
  for (let s = 1; s <= stages; s++) {
    if (!blocks.has(s)) throw fail(`stages ${[...blocks.keys()].sort((a, b) => a - b).join(', ')} are not numbered 1 to ${stages}`);
  }

  const depths: number[] = [];
  const heads: number[] = [];
  let window: number | undefined;
  let mlpRatio: number | undefined;
  for (let s = 1; s <= stages; s++) {
    const ids = [...blocks.get(s)!];
    // The highest index, not the count: a missing middle block is then reported as missing keys.
    depths.push(ids.length ? Math.max(...ids) + 1 : 0);
    const tableKey = ids.map((b) => `${SWIN_PREFIX}layers${s}.0.blocks.${b}.attn.relative_position_bias_table`).find((k) => shapes.has(k));
    if (!tableKey) throw fail(`stage ${s} has no attn.relative_position_bias_table, so its number of heads is unknown`);
    const table = shapes.get(tableKey)!;
    if (table.length !== 2) throw fail(`'${tableKey}' is ${fmt(table)}, not [(2w-1)^3, heads]`);
    heads.push(table[1]!);
    if (window === undefined) {
      const rows = table[0]!;
      const side = Math.round(Math.cbrt(rows));
      if (side ** 3 !== rows || side % 2 === 0) {
        throw fail(`'${tableKey}' has ${rows} rows, not (2w-1)^3 for a cubic window w (e.g. 2197 for w = 7)`);
      }
      window = (side + 1) / 2;
    }
    if (mlpRatio === undefined) {
      const fc = ids.map((b) => shapes.get(`${SWIN_PREFIX}layers${s}.0.blocks.${b}.mlp.linear1.weight`)).find((x) => x);
      if (fc) mlpRatio = fc[0]! / (featureSize * 2 ** (s - 1));
    }
  }
  if (mlpRatio === undefined || window === undefined) throw fail('no mlp.linear1.weight (or mlp.fc1.weight) in any block');

  return {
    kind: shapes.has('encoder1.layer.conv1.conv.weight') ? 'coralbay-encoder' : 'swin-vit',
    featureSize,
    inChannels,
    depths,
    heads,
    window: [window, window, window],
    patch: p,
    mlpRatio,
    merge: opts.merge ?? 'merging',
    useV2,
    normalize: opts.normalize ?? true,
  };
}

// ---------------------------------------------------------------------------------------------
// Validation

/** One checkpoint tensor, by canonical name. */
export interface CheckpointEntry {
  /** The key as stored in the file. */
  key: string;
  dtype: Dtype;
  shape: number[];
}

const FLOAT_DTYPES: ReadonlySet<Dtype> = new Set(['F64', 'F32', 'F16', 'BF16']);
const LIST_CAP = 20;

function capped(items: string[]): string {
  const shown = items.slice(0, LIST_CAP).map((s) => `    ${s}`);
  if (items.length > LIST_CAP) shown.push(`    … and ${items.length - LIST_CAP} more`);
  return shown.join('\n');
}

/**
 * Throws one ReefError listing every missing, unexpected, mis-shaped, non-float and duplicated key
 * of `entries` against `paramShapes(cfg)`; `duplicates` are canonical names several keys map to.
 * `inferred` says so in the message: depths come from the highest block index present, so a
 * checkpoint missing a stage's LAST block reads as a shallower model, and the caller should know
 * the configuration was a guess it can override.
 */
export function validateStateDict(
  entries: ReadonlyMap<string, CheckpointEntry>,
  cfg: ModelConfig,
  name = 'checkpoint',
  duplicates: ReadonlyMap<string, string[]> = new Map(),
  inferred = false,
): void {
  const expected = paramShapes(cfg);
  const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;
  const missing = [...expected.keys()].filter((k) => !entries.has(k));
  const unexpected: string[] = [];
  const misshaped: string[] = [];
  const notFloat: string[] = [];
  for (const [canon, e] of entries) {
    const want = expected.get(canon);
    if (!want) {
      unexpected.push(e.key === canon ? e.key : `${e.key} (read as ${canon})`);
      continue;
    }
    if (want.length !== e.shape.length || want.some((d, i) => d !== e.shape[i])) {
      misshaped.push(`${canon}: checkpoint ${fmt(e.shape)}, expected ${fmt(want)}`);
    }
    if (!FLOAT_DTYPES.has(e.dtype)) notFloat.push(`${e.key}: ${e.dtype}`);
  }
  const dup = [...duplicates].map(([canon, keys]) => `${keys.join(', ')} all name ${canon}`);

  const sections: [string, string[]][] = [
    ['missing', missing],
    ['unexpected', unexpected],
    ['mis-shaped', misshaped],
    ['not floating point', notFloat],
    ['duplicated', dup],
  ];
  const found = sections.filter(([, xs]) => xs.length);
  if (!found.length) return;
  throw new ReefError(
    `${name}: the state dict does not match ${inferred ? 'the configuration inferred from it, ' : ''}${describeConfig(cfg)} (${found.map(([what, xs]) => `${xs.length} ${what}`).join(', ')}):\n` +
      found.map(([what, xs]) => `  ${what}:\n${capped(xs)}`).join('\n'),
  );
}

// ---------------------------------------------------------------------------------------------
// Reading checkpoints

export type CheckpointFormat = 'safetensors' | 'pytorch';

/** A checkpoint's tensor list (header only) and a reader for one tensor at a time. */
export interface Checkpoint {
  format: CheckpointFormat;
  /** All tensors by stored key, in file order. */
  tensors: Map<string, { dtype: Dtype; shape: number[] }>;
  /** One float tensor's values as f32 (a fresh array the caller owns). */
  read(key: string): Promise<Float32Array>;
}

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];
/** Start of a legacy (pre-1.6, non-zip) torch.save file: pickle PROTO 2 then LONG1 of its magic number. */
const LEGACY_TORCH_MAGIC = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46];

/**
 * Opens a checkpoint by its bytes (not its file name): a zip is a torch.save archive, anything else
 * is read as safetensors. For a .pt whose tensors sit under `root` (or a top-level `state_dict`
 * entry, taken automatically) only that sub-tree is used.
 */
export async function openCheckpoint(src: ByteSource, name: string, opts: { root?: string } = {}): Promise<Checkpoint> {
  const head = src.size >= 8 ? await src.read(0, 8) : new Uint8Array(0);
  const starts = (magic: number[]) => magic.every((b, i) => head[i] === b);
  if (starts(LEGACY_TORCH_MAGIC)) {
    throw new ReefError(`${name}: a legacy (pre-PyTorch 1.6) torch.save file; re-save it with a current torch.save, or convert it to safetensors`);
  }
  if (starts(ZIP_MAGIC)) {
    let archive = await readTorchArchive(src, name, opts.root !== undefined ? { root: opts.root } : {});
    // Training checkpoints wrap the weights: {'state_dict': {...}, 'epoch': …, 'optimizer': …}.
    if (opts.root === undefined && [...archive.tensors.keys()].some((k) => k.startsWith('state_dict.'))) {
      archive = await readTorchArchive(src, name, { root: 'state_dict' });
    }
    const a = archive;
    return {
      format: 'pytorch',
      tensors: new Map([...a.tensors].map(([k, t]) => [k, { dtype: t.dtype, shape: [...t.shape] }])),
      read: async (key) => (await readTorchTensor(src, a, key)).data as Float32Array,
    };
  }
  const header = await readHeader(src, name);
  return {
    format: 'safetensors',
    tensors: new Map([...header.tensors].map(([k, t]) => [k, { dtype: t.dtype, shape: [...t.shape] }])),
    read: async (key) => (await readTensor(src, header, key)).data as Float32Array,
  };
}

// ---------------------------------------------------------------------------------------------
// Loading onto the GPU

export interface LoadOptions {
  /** Patch-merging order; not recorded in weights. Default 'merging' (MONAI ≤ 1.4). */
  merge?: MergeOrder;
  /** Hidden-state LayerNorm; not recorded in weights. Default true. */
  normalize?: boolean;
  requiresGrad?: boolean;
  /** GPU storage; 'f16' converts on upload and needs shader-f16. Default 'f32'. */
  dtype?: 'f32' | 'f16';
  /** Overrides of inferred fields; a complete ModelConfig skips inference altogether. */
  config?: Partial<ModelConfig>;
  /** For .pt files: the dotted path of the state dict inside the pickle (`'teacher'`, `'model.ema'`). */
  root?: string;
}

export interface LoadedWeights {
  config: ModelConfig;
  format: CheckpointFormat;
  /** By canonical name (`paramShapes(config)`'s keys). */
  weights: Map<string, Tensor>;
  /** Looks a weight up by canonical name, throwing a ReefError that names a missing one. */
  lookup: WeightLookup;
  dispose(): void;
}

const CONFIG_FIELDS: readonly (keyof ModelConfig)[] = [
  'kind', 'featureSize', 'inChannels', 'depths', 'heads', 'window', 'patch', 'mlpRatio', 'merge', 'useV2', 'normalize',
];

function isComplete(c: Partial<ModelConfig> | undefined): c is ModelConfig {
  return !!c && CONFIG_FIELDS.every((f) => c[f] !== undefined);
}

/** `(name) => Tensor` over loaded weights; a missing name is an error naming it and the source. */
export function weightLookup(weights: ReadonlyMap<string, Tensor>, source = 'checkpoint'): WeightLookup {
  return (name) => {
    const t = weights.get(name);
    if (!t) throw new ReefError(`${source}: no weight '${name}' among the ${weights.size} loaded`);
    return t;
  };
}

/**
 * Reads, validates and uploads a SwinViT / CoralBay encoder state dict. Nothing is allocated on the
 * GPU until the header and every shape have passed; if a read fails midway, what was uploaded is freed.
 */
export async function loadWeights(rt: Runtime, src: ByteSource, name: string, opts: LoadOptions = {}): Promise<LoadedWeights> {
  const dtype = opts.dtype ?? 'f32';
  if (dtype === 'f16' && !rt.caps.f16) throw new ReefError(`${name}: f16 weights need shader-f16, which this adapter lacks`);
  const ckpt = await openCheckpoint(src, name, opts.root !== undefined ? { root: opts.root } : {});

  const entries = new Map<string, CheckpointEntry>();
  const duplicates = new Map<string, string[]>();
  for (const [key, t] of ckpt.tensors) {
    const canon = canonicalKey(key);
    if (canon === null) continue;
    const prev = entries.get(canon);
    if (prev) duplicates.set(canon, [...(duplicates.get(canon) ?? [prev.key]), key]);
    else entries.set(canon, { key, ...t });
  }

  const over = { ...opts.config };
  if (opts.merge !== undefined) over.merge = opts.merge;
  if (opts.normalize !== undefined) over.normalize = opts.normalize;
  const given = isComplete(over);
  const config: ModelConfig = given
    ? over
    : {
        ...inferConfig(new Map([...entries].map(([k, e]) => [k, e.shape])), { name, merge: over.merge, normalize: over.normalize }),
        ...over,
      };
  validateStateDict(entries, config, name, duplicates, !given);

  const weights = new Map<string, Tensor>();
  const dispose = () => {
    for (const t of weights.values()) t.dispose();
    weights.clear();
  };
  try {
    // File order (entries keeps it), so a file source is read front to back.
    for (const [canon, e] of entries) {
      const host = await ckpt.read(e.key);
      weights.set(canon, tensor(rt, host, e.shape, { dtype, requiresGrad: opts.requiresGrad ?? false, name: canon }));
    }
  } catch (err) {
    dispose();
    throw err;
  }
  return { config, format: ckpt.format, weights, lookup: weightLookup(weights, name), dispose };
}
