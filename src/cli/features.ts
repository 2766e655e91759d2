/**
 * `reef features`: a CT volume through a SwinViT or CoralBay encoder checkpoint, features written
 * as safetensors. hidden_states.0 … hidden_states.4 always, as float32 (1, C, D, H, W) like MONAI's
 * SwinViT returns them; for a CoralBay encoder also enc0 … enc3, dec4 and the multiscale
 * `embedding` (1, 24·fs). Progress and timings go to stderr, so stdout stays clean.
 */
import { fmtBytes, ReefError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { loadNifti } from '../data/nifti-file.js';
import { windowHu } from '../data/nifti.js';
import { fileSource, writeSafetensorsFile } from '../io/node-file.js';
import type { WriteTensor } from '../io/safetensors.js';
import { describeConfig, type ModelConfig } from '../models/swin3d/config.js';
import { encodeFeatures, type FeatureMap } from '../models/swin3d/features.js';
import { loadWeights } from '../models/swin3d/state-dict.js';
import type { MergeOrder } from '../ops/patch-merge.js';
import { tensor } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';

export interface FeaturesOptions {
  weights: string;
  input: string;
  out: string;
  merge?: MergeOrder;
  /** Forces use_v2 on or off; inferred from the checkpoint's keys when absent. */
  useV2?: boolean;
  normalize?: boolean;
  /** Clip to [lo, hi] HU and scale to [0, 1] (MONAI ScaleIntensityRange) before the model. */
  huWindow?: [number, number];
  f16?: boolean;
  log?: (line: string) => void;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export async function runFeatures(rt: Runtime, o: FeaturesOptions): Promise<void> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const dtype = o.f16 ? 'f16' : 'f32';
  if (o.f16 && !rt.caps.f16) throw new ReefError('--f16: this adapter has no shader-f16');
  log(`reef features on ${rt.describe()} (${dtype} compute)`);

  let t = performance.now();
  const vol = await loadNifti(o.input);
  const data = o.huWindow ? windowHu(vol.data, o.huWindow[0], o.huWindow[1]) : vol.data;
  log(`volume ${o.input}: ${vol.shape.join('×')} ${vol.dtype}, spacing ${vol.spacing.map((s) => s.toFixed(2)).join('×')} mm${o.huWindow ? `, HU window [${o.huWindow.join(', ')}] → [0, 1]` : ''} (${seconds(performance.now() - t)})`);

  t = performance.now();
  const src = await fileSource(o.weights);
  const config: Partial<ModelConfig> = {};
  if (o.useV2 !== undefined) config.useV2 = o.useV2;
  let loaded;
  try {
    loaded = await loadWeights(rt, src, o.weights, { merge: o.merge, normalize: o.normalize, dtype, config });
  } finally {
    await src.close();
  }
  const cfg = loaded.config;
  log(`weights ${o.weights} (${loaded.format}): ${describeConfig(cfg)} (${seconds(performance.now() - t)})`);

  let outputs: FeatureMap[] = [];
  let x: Tensor | null = null;
  try {
    if (cfg.inChannels !== 1) throw new ReefError(`${o.weights}: the model takes ${cfg.inChannels} input channels, a NIfTI volume gives 1`);
    x = tensor(rt, data, [1, 1, ...vol.shape], { dtype });
    t = performance.now();
    outputs = encodeFeatures(x, loaded, { source: o.weights });
    await rt.sync();
    log(`forward: ${seconds(performance.now() - t)}, peak GPU memory ${fmtBytes(rt.memory().peak)}`);

    t = performance.now();
    const host: WriteTensor[] = [];
    for (const { name, tensor: gpu } of outputs) host.push({ name, dtype: 'F32', shape: [...gpu.shape], data: await gpu.read() });
    const metadata = {
      format: 'pt',
      model: cfg.kind,
      config: JSON.stringify(cfg),
      input: o.input,
      ...(o.huWindow ? { hu_window: o.huWindow.join(',') } : {}),
    };
    await writeSafetensorsFile(o.out, host, metadata);
    log(`wrote ${o.out}: ${host.map((h) => `${h.name} [${h.shape.join(', ')}]`).join(', ')} (${seconds(performance.now() - t)})`);
    log(`total ${seconds(performance.now())} since process start`);
  } finally {
    x?.dispose();
    for (const { tensor: gpu } of outputs) gpu.dispose();
    loaded.dispose();
  }
}

/** `--hu-window lo,hi`. */
export function parseHuWindow(v: string): [number, number] {
  const parts = v.split(',').map(Number);
  if (parts.length !== 2 || parts.some((p) => !Number.isFinite(p)) || !(parts[0]! < parts[1]!)) {
    throw new ReefError(`--hu-window ${v}: expected lo,hi with lo < hi (e.g. -1000,1000)`);
  }
  return [parts[0]!, parts[1]!];
}
