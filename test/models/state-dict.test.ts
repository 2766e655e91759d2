/**
 * State-dict loading (src/models/swin3d/state-dict.ts): key canonicalisation, configuration
 * inference, one validation error listing every problem, values through safetensors (F32/F16/BF16)
 * and PyTorch zips built in memory, clean failures that allocate nothing, no GPU memory leaks, and
 * the real swin-tiny fixture.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Runtime } from '../../src/gpu/runtime';
import { fileSource } from '../../src/io/node-file';
import { bf16BitsToF32, bytesSource, toBf16Array, writeSafetensors, type WriteDtype } from '../../src/io/safetensors';
import { makeRng } from '../../src/tensor/create';
import { fromF16Array, toF16Array } from '../../src/tensor/half';
import { paramShapes, PRESETS, swinViTConfig, swinViTParamShapes, type ModelConfig } from '../../src/models/swin3d/config';
import {
  canonicalKey, inferConfig, loadWeights, validateStateDict, weightLookup, type CheckpointEntry, type LoadOptions,
} from '../../src/models/swin3d/state-dict';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

const SWIN = PRESETS['swin-tiny']!;
const CORAL = PRESETS['coralbay-tiny']!;

/** Small random values per parameter, deterministic. */
function randomValues(shapes: Map<string, number[]>, seed = 1): Map<string, Float32Array> {
  const rng = makeRng(seed);
  const out = new Map<string, Float32Array>();
  for (const [k, s] of shapes) out.set(k, Float32Array.from({ length: s.reduce((a, b) => a * b, 1) }, () => rng() - 0.5));
  return out;
}

/** A safetensors file of `values`, each key renamed by `rename`, with `extra` tensors added. */
function safetensorsOf(
  shapes: Map<string, number[]>,
  values: Map<string, Float32Array>,
  opts: { dtype?: WriteDtype; rename?: (k: string) => string; extra?: [string, number[]][] } = {},
): Uint8Array {
  const rename = opts.rename ?? ((k: string) => k);
  const entries = [...shapes].map(([k, shape]) => ({ name: rename(k), dtype: opts.dtype ?? 'F32', shape, data: values.get(k)! }));
  for (const [name, shape] of opts.extra ?? []) entries.push({ name, dtype: 'F32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
  return writeSafetensors(entries);
}

/** Every value identical (bitwise, NaN-free data), reporting the first difference. */
function expectSame(got: Float32Array, want: Float32Array, key: string): void {
  expect(got.length, key).toBe(want.length);
  const i = got.findIndex((v, j) => v !== want[j]);
  if (i >= 0) expect(`${key}[${i}] = ${got[i]}`).toBe(`${key}[${i}] = ${want[i]}`);
}

async function loadAndCheck(bytes: Uint8Array, want: Map<string, Float32Array>, opts: LoadOptions = {}, round = (x: Float32Array) => x) {
  const before = rt.memory().inUse;
  const loaded = await loadWeights(rt, bytesSource(bytes), 'test.safetensors', opts);
  try {
    expect([...loaded.weights.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [k, v] of want) expectSame(await loaded.weights.get(k)!.read(), round(v), k);
    return loaded.config;
  } finally {
    loaded.dispose();
    expect(rt.memory().inUse).toBe(before);
  }
}

/** The error a promise rejects with, for checking several parts of its message. */
async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('canonicalKey', () => {
  it('strips module./backbone. in any order and adds swinViT. to bare SwinViT keys', () => {
    const k = 'swinViT.layers1.0.blocks.0.attn.qkv.weight';
    for (const pre of ['', 'module.', 'backbone.', 'module.backbone.', 'backbone.module.']) {
      expect(canonicalKey(pre + k)).toBe(k);
      expect(canonicalKey(pre + k.slice('swinViT.'.length))).toBe(k);
    }
    expect(canonicalKey('patch_embed.proj.weight')).toBe('swinViT.patch_embed.proj.weight');
    expect(canonicalKey('layers2c.0.layer.conv1.conv.weight')).toBe('swinViT.layers2c.0.layer.conv1.conv.weight');
    expect(canonicalKey('module.encoder1.layer.conv3.conv.weight')).toBe('encoder1.layer.conv3.conv.weight');
  });

  it('renames mlp.fc1/fc2, ignores relative_position_index, passes unknown keys through', () => {
    expect(canonicalKey('layers3.0.blocks.1.mlp.fc1.bias')).toBe('swinViT.layers3.0.blocks.1.mlp.linear1.bias');
    expect(canonicalKey('swinViT.layers3.0.blocks.1.mlp.fc2.weight')).toBe('swinViT.layers3.0.blocks.1.mlp.linear2.weight');
    expect(canonicalKey('module.swinViT.layers1.0.blocks.0.attn.relative_position_index')).toBeNull();
    expect(canonicalKey('head.mlp.0.weight')).toBe('head.mlp.0.weight');
    expect(canonicalKey('decoder1.transp_conv.conv.weight')).toBe('decoder1.transp_conv.conv.weight');
  });
});

describe('inferConfig', () => {
  it('recovers the presets', () => {
    expect(inferConfig(paramShapes(SWIN))).toEqual(SWIN);
    expect(inferConfig(paramShapes(CORAL))).toEqual(CORAL);
    expect(inferConfig(paramShapes(PRESETS['coralbay-h']!))).toEqual(PRESETS['coralbay-h']);
  });

  it('infers depths, heads, window, mlp ratio, patch, channels and use_v2', () => {
    const cfg = swinViTConfig({ featureSize: 24, inChannels: 2, depths: [1, 2, 1, 2], heads: [2, 4, 8, 16], window: [5, 5, 5], patch: 4, mlpRatio: 2, useV2: true });
    const shapes = swinViTParamShapes(cfg);
    expect(shapes.get('swinViT.layers1.0.blocks.0.attn.relative_position_bias_table')).toEqual([729, 2]);
    expect(inferConfig(shapes, { merge: 'mergingv2', normalize: false })).toEqual({ kind: 'swin-vit', ...cfg, merge: 'mergingv2', normalize: false });
    // Three stages.
    const three = { ...cfg, depths: [2, 2, 2], heads: [3, 6, 12], useV2: false };
    expect(inferConfig(swinViTParamShapes(three))).toMatchObject({ depths: [2, 2, 2], heads: [3, 6, 12], useV2: false, kind: 'swin-vit' });
  });

  it('takes depth from the highest block index, so a missing middle block is reported as missing keys', () => {
    const shapes = swinViTParamShapes(swinViTConfig({ featureSize: 12, depths: [3, 2] , heads: [3, 6] }));
    for (const k of [...shapes.keys()]) if (k.includes('layers1.0.blocks.1.')) shapes.delete(k);
    expect(inferConfig(shapes).depths).toEqual([3, 2]);
  });

  it('rejects tables that are not (2w-1)^3 rows, and non-SwinViT state dicts', () => {
    const shapes = paramShapes(SWIN);
    const t = 'swinViT.layers1.0.blocks.0.attn.relative_position_bias_table';
    shapes.set(t, [730, 3]);
    expect(() => inferConfig(shapes, { name: 'odd.pt' })).toThrow(/odd\.pt: .*730 rows, not \(2w-1\)\^3/);
    shapes.set(t, [8, 3]); // 2³: an even side has no window
    expect(() => inferConfig(shapes)).toThrow(/8 rows/);
    expect(() => inferConfig(new Map([['fc.weight', [2, 3]]]), { name: 'x.pt' })).toThrow(/x\.pt: .*not a MONAI SwinViT .*fc\.weight/);
    const bad = paramShapes(SWIN);
    bad.set('swinViT.patch_embed.proj.weight', [12, 1, 2, 3, 2]);
    expect(() => inferConfig(bad)).toThrow(/\[12, 1, 2, 3, 2\], not \[feature_size/);
  });
});

describe('validateStateDict', () => {
  const entriesOf = (shapes: Map<string, number[]>) =>
    new Map<string, CheckpointEntry>([...shapes].map(([k, s]) => [k, { key: k, dtype: 'F32', shape: s }]));

  it('accepts an exact match and lists non-float parameters', () => {
    const e = entriesOf(paramShapes(SWIN));
    expect(() => validateStateDict(e, SWIN)).not.toThrow();
    e.get('swinViT.patch_embed.proj.bias')!.dtype = 'I64';
    expect(() => validateStateDict(e, SWIN, 'w.safetensors')).toThrow(/w\.safetensors: .*1 not floating point[\s\S]*swinViT\.patch_embed\.proj\.bias: I64/);
  });

  it('caps each list at 20 entries', () => {
    const e = entriesOf(paramShapes(SWIN));
    for (let i = 0; i < 25; i++) e.set(`extra.${i}`, { key: `extra.${i}`, dtype: 'F32', shape: [1] });
    const msg = (() => {
      try {
        validateStateDict(e, SWIN);
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    })();
    expect(msg).toContain('25 unexpected');
    expect(msg).toContain('extra.19');
    expect(msg).not.toContain('extra.20');
    expect(msg).toContain('… and 5 more');
  });
});

describe('loadWeights (safetensors)', () => {
  it('round-trips f32 values exactly and infers the CoralBay encoder', async () => {
    const shapes = paramShapes(CORAL);
    const values = randomValues(shapes);
    const cfg = await loadAndCheck(safetensorsOf(shapes, values), values);
    expect(cfg).toEqual(CORAL);
  });

  it('widens stored F16 and BF16 to f32 exactly', async () => {
    const shapes = paramShapes(SWIN);
    const values = randomValues(shapes, 2);
    await loadAndCheck(safetensorsOf(shapes, values, { dtype: 'F16' }), values, {}, (v) => fromF16Array(toF16Array(v)));
    await loadAndCheck(safetensorsOf(shapes, values, { dtype: 'BF16' }), values, {}, (v) => Float32Array.from(toBf16Array(v), bf16BitsToF32));
  });

  it('converts to f16 on upload', async (ctx) => {
    if (!rt.caps.f16) {
      console.log('f16 upload test skipped: adapter has no shader-f16');
      ctx.skip();
    }
    const shapes = paramShapes(SWIN);
    const values = randomValues(shapes, 3);
    const before = rt.memory().inUse;
    const loaded = await loadWeights(rt, bytesSource(safetensorsOf(shapes, values)), 'h.safetensors', { dtype: 'f16', requiresGrad: true });
    const w = loaded.weights.get('swinViT.layers2.0.blocks.1.mlp.linear1.weight')!;
    expect(w.dtype).toBe('f16');
    expect(w.requiresGrad).toBe(true);
    expectSame(await w.read(), fromF16Array(toF16Array(values.get(w.name)!)), w.name);
    loaded.dispose();
    expect(rt.memory().inUse).toBe(before);
  });

  it('rejects f16 upload without shader-f16 before reading anything', async (ctx) => {
    if (rt.caps.f16) {
      console.log('no-shader-f16 rejection test skipped: this adapter has shader-f16 (the check only fires without it)');
      ctx.skip();
    }
    await expect(loadWeights(rt, bytesSource(new Uint8Array(0)), 'h.safetensors', { dtype: 'f16' })).rejects.toThrow(/shader-f16/);
  });

  it('accepts module./backbone. prefixes, bare SwinViT keys, fc1/fc2, and ignores relative_position_index', async () => {
    const shapes = paramShapes(SWIN);
    const values = randomValues(shapes, 4);
    const bare = (k: string) => k.replace(/^swinViT\./, '');
    const variants: [string, (k: string) => string][] = [
      ['module.', (k) => `module.${k}`],
      ['backbone.', (k) => `backbone.${k}`],
      ['module.backbone.', (k) => `module.backbone.${k}`],
      ['no swinViT.', bare],
      ['module. without swinViT.', (k) => `module.${bare(k)}`],
      ['fc1/fc2', (k) => k.replace('.mlp.linear1.', '.mlp.fc1.').replace('.mlp.linear2.', '.mlp.fc2.')],
    ];
    for (const [label, rename] of variants) {
      const cfg = await loadAndCheck(safetensorsOf(shapes, values, { rename }), values);
      expect(cfg, label).toEqual(SWIN);
    }
    // relative_position_index buffers (MONAI saves them; they are integers) are skipped.
    const index: [string, number[]][] = [1, 2, 3, 4].map((s) => [`module.swinViT.layers${s}.0.blocks.0.attn.relative_position_index`, [343, 343]]);
    await loadAndCheck(safetensorsOf(shapes, values, { rename: (k) => `module.${k}`, extra: index }), values);
  });

  it('infers a non-default configuration through the loader (depths 1,2,1,2, window 5, use_v2)', async () => {
    const cfg: ModelConfig = { kind: 'swin-vit', ...swinViTConfig({ featureSize: 12, depths: [1, 2, 1, 2], window: [5, 5, 5], useV2: true }) };
    const shapes = paramShapes(cfg);
    const values = randomValues(shapes, 5);
    expect(await loadAndCheck(safetensorsOf(shapes, values), values, { merge: 'merging-1.5' })).toEqual({ ...cfg, merge: 'merging-1.5' });
  });

  it('lists missing, unexpected and mis-shaped keys in one error and allocates nothing', async () => {
    const shapes = paramShapes(SWIN);
    const values = randomValues(shapes, 6);
    const drop = 'swinViT.layers2.0.blocks.1.norm2.bias';
    const bent = 'swinViT.layers3.0.downsample.reduction.weight';
    const file = new Map(shapes);
    file.delete(drop);
    file.set(bent, [96, 385]);
    values.set(bent, new Float32Array(96 * 385));
    const bytes = safetensorsOf(file, values, { extra: [['head.weight', [4, 192]], ['swinViT.layers5.extra', [3]]] });
    const before = rt.memory().inUse;
    const err = await errorOf(loadWeights(rt, bytesSource(bytes), 'bad.safetensors'));
    expect(rt.memory().inUse).toBe(before);
    expect(err.name).toBe('ReefError');
    const msg = err.message;
    expect(msg).toMatch(/^bad\.safetensors: /);
    expect(msg).toContain('1 missing, 2 unexpected, 1 mis-shaped');
    expect(msg).toContain(drop);
    expect(msg).toContain('head.weight');
    expect(msg).toContain(`${bent}: checkpoint [96, 385], expected [96, 384]`);
  });

  it('lists keys that name one parameter twice, and missing last blocks once depths are given', async () => {
    const shapes = paramShapes(SWIN);
    const values = randomValues(shapes, 10);
    const k = 'swinViT.patch_embed.proj.bias';
    const dup = await errorOf(loadWeights(rt, bytesSource(safetensorsOf(shapes, values, { extra: [[`module.${k}`, [12]]] })), 'dup.pt'));
    expect(dup.message).toContain(`1 duplicated`);
    expect(dup.message).toMatch(new RegExp(`(${k}, module\\.${k}|module\\.${k}, ${k}) all name ${k}`));
    // Without its last block stage 2 reads as depth 1, and loads as such...
    const file = new Map([...shapes].filter(([key]) => !key.includes('layers2.0.blocks.1.')));
    const cut = safetensorsOf(file, values);
    const shallow = await loadWeights(rt, bytesSource(cut), 'cut.safetensors');
    expect(shallow.config.depths).toEqual([2, 1, 2, 2]);
    shallow.dispose();
    // ...while the depths given by the caller make the block's 13 parameters missing.
    const before = rt.memory().inUse;
    const err = await errorOf(loadWeights(rt, bytesSource(cut), 'cut.safetensors', { config: { depths: [2, 2, 2, 2] } }));
    expect(err.message).toContain('inferred from it');
    expect(err.message).toContain('depths 2,2,2,2');
    expect(err.message).toContain('13 missing');
    expect(err.message).toContain('swinViT.layers2.0.blocks.1.attn.qkv.weight');
    expect(rt.memory().inUse).toBe(before);
  });

  it('a truncated file or a corrupt header fails clearly and allocates nothing', async () => {
    const shapes = paramShapes(SWIN);
    const bytes = safetensorsOf(shapes, randomValues(shapes, 7));
    const before = rt.memory().inUse;
    const trunc = await errorOf(loadWeights(rt, bytesSource(bytes.slice(0, bytes.length - 100)), 'cut.safetensors'));
    expect(trunc.message).toMatch(/^cut\.safetensors: .*truncated/);
    const corrupt = bytes.slice();
    corrupt[9] = 0xff; // inside the JSON: invalid UTF-8
    const bad = await errorOf(loadWeights(rt, bytesSource(corrupt), 'corrupt.safetensors'));
    expect(bad.message).toMatch(/^corrupt\.safetensors: header is not valid UTF-8 JSON/);
    const tiny = await errorOf(loadWeights(rt, bytesSource(bytes.slice(0, 5)), 'tiny.safetensors'));
    expect(tiny.message).toMatch(/^tiny\.safetensors: truncated/);
    expect(rt.memory().inUse).toBe(before);
  });

  it('frees what it uploaded when a read fails midway', async () => {
    const shapes = paramShapes(SWIN);
    const bytes = safetensorsOf(shapes, randomValues(shapes, 8));
    const src = bytesSource(bytes);
    let reads = 0;
    const flaky = { size: src.size, read: (o: number, n: number) => (++reads > 20 ? Promise.reject(new Error('disk gone')) : src.read(o, n)) };
    const before = rt.memory().inUse;
    await expect(loadWeights(rt, flaky, 'flaky.safetensors')).rejects.toThrow('disk gone');
    expect(rt.memory().inUse).toBe(before);
  });

  it('weightLookup names a missing weight', async () => {
    const shapes = paramShapes(SWIN);
    const loaded = await loadWeights(rt, bytesSource(safetensorsOf(shapes, randomValues(shapes))), 'w.safetensors');
    try {
      expect(loaded.lookup('swinViT.patch_embed.proj.bias').shape).toEqual([12]);
      expect(() => loaded.lookup('swinViT.layers9.0.norm.weight')).toThrow(/w\.safetensors: no weight 'swinViT\.layers9\.0\.norm\.weight'/);
      expect(() => weightLookup(new Map(), 'm')('x')).toThrow(/m: no weight 'x' among the 0 loaded/);
    } finally {
      loaded.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// PyTorch zips: a minimal protocol-2 pickle of {'state_dict': {key: tensor}, 'epoch': 3}

function torchZip(tensors: [string, number[], Float32Array][], wrap = true): Uint8Array {
  const out: number[] = [];
  const op = (...bs: number[]) => out.push(...bs);
  const u32 = (n: number) => op(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
  const str = (s: string) => { const b = new TextEncoder().encode(s); op(0x58); u32(b.length); op(...b); }; // BINUNICODE
  const int = (n: number) => { op(0x4a); u32(n); }; // BININT
  const global = (m: string, n: string) => op(0x63, ...new TextEncoder().encode(`${m}\n${n}\n`));
  const ints = (xs: number[]) => { op(0x28); xs.forEach(int); op(0x74); }; // MARK … TUPLE
  const files: Record<string, Uint8Array> = { 'archive/version': new TextEncoder().encode('3\n') };
  op(0x80, 2); // PROTO 2
  if (wrap) { op(0x7d, 0x28); str('epoch'); int(3); str('state_dict'); } // {'epoch': 3, 'state_dict': …
  op(0x7d, 0x28); // EMPTY_DICT MARK
  tensors.forEach(([key, shape, data], i) => {
    str(key);
    global('torch._utils', '_rebuild_tensor_v2');
    op(0x28); // args
    op(0x28); str('storage'); global('torch', 'FloatStorage'); str(String(i)); str('cpu'); int(data.length); op(0x74, 0x51); // BINPERSID
    int(0);
    ints(shape);
    ints(shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1)));
    op(0x89); // False
    global('collections', 'OrderedDict'); op(0x29, 0x52); // OrderedDict()
    op(0x74, 0x52); // TUPLE REDUCE
    files[`archive/data/${i}`] = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  });
  op(0x75); // SETITEMS
  if (wrap) op(0x75);
  op(0x2e); // STOP
  files['archive/data.pkl'] = new Uint8Array(out);
  return zipSync(files, { level: 0 });
}

describe('loadWeights (PyTorch .pt)', () => {
  it('reads a DataParallel SwinViT state dict nested under state_dict', async () => {
    const shapes = paramShapes(SWIN);
    const values = randomValues(shapes, 9);
    const pt = torchZip([...shapes].map(([k, s]) => [`module.${k}`, s, values.get(k)!]));
    const before = rt.memory().inUse;
    const loaded = await loadWeights(rt, bytesSource(pt), 'ckpt.pth');
    try {
      expect(loaded.format).toBe('pytorch');
      expect(loaded.config).toEqual(SWIN);
      for (const k of ['swinViT.patch_embed.proj.weight', 'swinViT.layers4.0.blocks.1.attn.relative_position_bias_table']) {
        expectSame(await loaded.weights.get(k)!.read(), values.get(k)!, k);
      }
    } finally {
      loaded.dispose();
    }
    expect(rt.memory().inUse).toBe(before);
    // Unwrapped, the same state dict loads too.
    const plain = torchZip([...shapes].map(([k, s]) => [k, s, values.get(k)!]), false);
    (await loadWeights(rt, bytesSource(plain), 'plain.pt')).dispose();
    expect(rt.memory().inUse).toBe(before);
  });

  const fixtures = join(__dirname, '../io/fixtures');
  const ckpt = join(fixtures, 'torch-1.13-checkpoint.pt');
  it.skipIf(!existsSync(ckpt))('a real torch.save file that is not a SwinViT gives a clean error', async () => {
    const before = rt.memory().inUse;
    const bytes = readFileSync(ckpt);
    // Its {'state_dict': Sequential(Linear, BatchNorm1d)} is unwrapped: the keys named are the module's.
    const err = await errorOf(loadWeights(rt, bytesSource(bytes), 'torch-1.13-checkpoint.pt'));
    expect(err.message).toMatch(/^torch-1\.13-checkpoint\.pt: cannot infer .*not a MONAI SwinViT .*0\.weight, 0\.bias/);
    // With the configuration given, validation lists what does not match (BatchNorm's I64 counter included).
    const err2 = await errorOf(loadWeights(rt, bytesSource(bytes), 'torch-1.13-checkpoint.pt', { config: SWIN }));
    expect(err2.message).toContain('118 missing, 7 unexpected');
    expect(err2.message).toContain('1.num_batches_tracked');
    const err3 = await errorOf(loadWeights(rt, bytesSource(bytes.subarray(0, 200)), 'cut.pt'));
    expect(err3.message).toMatch(/^cut\.pt: /);
    expect(rt.memory().inUse).toBe(before);
  });

  it('rejects a legacy (pre-1.6) torch.save file by its magic number', async () => {
    const legacy = new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
    await expect(loadWeights(rt, bytesSource(legacy), 'old.pt')).rejects.toThrow(/old\.pt: a legacy/);
  });
});

// ---------------------------------------------------------------------------------------------

const FIXTURE = new URL('../../../shared/fixtures/swin-tiny/weights.safetensors', import.meta.url).pathname;
const weightsPath = existsSync(FIXTURE) ? FIXTURE : '/work/shared/fixtures/swin-tiny/weights.safetensors';
const hasFixture = existsSync(weightsPath);
if (!hasFixture) console.log(`swin-tiny state-dict test skipped: no fixture at ${FIXTURE}`);

describe('the swin-tiny fixture', () => {
  it.skipIf(!hasFixture)('loads and infers fs 12, depths 2,2,2,2, heads 3,6,12,24, window 7, no use_v2', async () => {
    const before = rt.memory().inUse;
    const src = await fileSource(weightsPath);
    try {
      const loaded = await loadWeights(rt, src, weightsPath);
      expect(loaded.config).toEqual(SWIN);
      expect(loaded.weights.size).toBe(118);
      expect(loaded.lookup('swinViT.layers4.0.downsample.reduction.weight').shape).toEqual([192, 768]);
      loaded.dispose();
    } finally {
      await src.close();
    }
    expect(rt.memory().inUse).toBe(before);
  });
});
