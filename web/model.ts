/**
 * The compute side of the page: one reef runtime on the page's WebGPU adapter (profiling on), the
 * weights (a checkpoint file or random tiny ones), the model input cut from the scan, and the
 * encoder run whose maps are read back for display and for the test hook.
 */
import {
  blobSource,
  createRuntime,
  describeConfig,
  encodeFeatures,
  GpuOutOfMemoryError,
  initWeights,
  loadWeights,
  paramShapes,
  PRESETS,
  readSafetensorsHeader,
  ReefError,
  resampleTrilinear,
  tensor,
  weightLookup,
  windowHu,
  type KernelProfile,
  type ModelConfig,
  type Runtime,
  type Tensor,
  type Volume,
} from '../src/index.js';

/** The model sees HU clipped to this window and scaled to [0, 1] (MONAI's ScaleIntensityRange). */
export const MODEL_HU_WINDOW: [number, number] = [-1000, 1000];

/** Random-weight models the page offers: the small presets. */
export const TINY_PRESETS = ['coralbay-tiny', 'swin-tiny'] as const;
export type TinyPreset = (typeof TINY_PRESETS)[number];

let runtime: Promise<Runtime> | null = null;

/** The page's runtime, created on first use; a failure (no WebGPU) is reported again on each call. */
export function getRuntime(): Promise<Runtime> {
  runtime ??= createRuntime({ profile: true }).catch((e: unknown) => {
    runtime = null;
    throw e;
  });
  return runtime;
}

/** Runs on the host page's own device from now on (as an app sharing a device with its renderer would). */
export function useDevice(device: GPUDevice): Promise<Runtime> {
  runtime = createRuntime({ device, profile: true });
  return runtime;
}

export interface Model {
  config: ModelConfig;
  lookup: (name: string) => Tensor;
  label: string;
  dispose(): void;
}

export function randomModel(rt: Runtime, preset: TinyPreset, seed: number): Model {
  const config = PRESETS[preset]!;
  const weights = initWeights(rt, paramShapes(config), seed);
  return {
    config,
    lookup: weightLookup(weights, `random ${preset}`),
    label: `random ${preset} weights (seed ${seed}): ${describeConfig(config)}`,
    dispose: () => {
      for (const t of weights.values()) t.dispose();
      weights.clear();
    },
  };
}

/**
 * A SwinViT / CoralBay checkpoint from a File (safetensors, or a PyTorch .pt/.pth state dict). A
 * safetensors file is checked against the adapter's buffer size before anything is uploaded;
 * running out of GPU memory while uploading is reported as not fitting.
 */
export async function fileModel(rt: Runtime, file: File): Promise<Model> {
  const src = blobSource(file);
  if (/\.safetensors$/i.test(file.name)) {
    const h = await readSafetensorsHeader(src, file.name);
    for (const [key, t] of h.tensors) {
      // Every tensor is widened to float32 on the GPU.
      const bytes = 4 * t.shape.reduce((a, b) => a * b, 1);
      if (bytes > rt.caps.maxBufferSize) {
        throw new ReefError(`${file.name}: the weights do not fit: ${key} needs ${mib(bytes)} as float32, over this adapter's largest buffer (${mib(rt.caps.maxBufferSize)})`);
      }
    }
  }
  try {
    const loaded = await loadWeights(rt, src, file.name);
    await rt.sync();
    return { config: loaded.config, lookup: loaded.lookup, label: `${file.name} (${loaded.format}): ${describeConfig(loaded.config)}`, dispose: () => loaded.dispose() };
  } catch (e) {
    if (e instanceof GpuOutOfMemoryError) throw new ReefError(`${file.name}: the weights do not fit in this adapter's memory (${e.message})`, { cause: e });
    throw e;
  }
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

export interface ModelInput {
  /** HU windowed to [0, 1], (D, H, W) row-major. */
  data: Float32Array;
  shape: [number, number, number];
  /** Scan voxels per input voxel along each axis (1 when the scan is used as it is). */
  scale: [number, number, number];
}

/**
 * The scan as the model sees it: as it is when every side is at most `maxSide`, else resampled
 * (trilinear, voxel centres spread over the same extent) to about `maxSide` along the physically
 * longest axis with near-isotropic voxels, so a large CT stays within a browser's memory.
 */
export function modelInput(vol: Volume, maxSide: number): ModelInput {
  const windowed = windowHu(vol.data, MODEL_HU_WINDOW[0], MODEL_HU_WINDOW[1]);
  if (vol.shape.every((n) => n <= maxSide)) return { data: windowed, shape: [...vol.shape], scale: [1, 1, 1] };
  const extent = vol.shape.map((n, a) => n * vol.spacing[a]!);
  const step = Math.max(...extent) / maxSide;
  const shape = vol.shape.map((n, a) => Math.min(n, Math.max(1, Math.round(extent[a]! / step)))) as [number, number, number];
  const scale = vol.shape.map((n, a) => n / shape[a]!) as [number, number, number];
  // resampleTrilinear maps output voxel o to input index (o + ½)·(n_in / n_out) − ½: a stride below 1.
  const data = resampleTrilinear(windowed, vol.shape, shape, shape.map((n, a) => n / vol.shape[a]!));
  return { data, shape, scale };
}

export interface HostMap {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface RunOutcome {
  maps: HostMap[];
  profile: KernelProfile[];
  timed: boolean;
  ms: { upload: number; encoder: number; readback: number };
  peakBytes: number;
}

/**
 * Runs the encoder and reads every map back. `stage(name)` is called as each phase starts, after
 * giving the page a chance to paint (the GPU work itself is one queued graph).
 */
export async function runModel(rt: Runtime, model: Model, input: ModelInput, stage: (name: 'upload' | 'encoder' | 'readback') => Promise<void>): Promise<RunOutcome> {
  await rt.sync();
  await rt.profiler?.reset();
  rt.pool.resetPeak();
  await stage('upload');
  let t = performance.now();
  const x = tensor(rt, input.data, [1, 1, ...input.shape]);
  let outputs: { name: string; tensor: Tensor }[] = [];
  try {
    await rt.sync();
    const upload = performance.now() - t;
    await stage('encoder');
    t = performance.now();
    outputs = encodeFeatures(x, model, { source: model.label, anySide: true });
    await rt.sync();
    const encoder = performance.now() - t;
    await stage('readback');
    t = performance.now();
    const maps: HostMap[] = [];
    for (const o of outputs) maps.push({ name: o.name, shape: [...o.tensor.shape], data: await o.tensor.read() });
    const readback = performance.now() - t;
    const profile = await rt.profile();
    return { maps, profile, timed: rt.profiler?.timed ?? false, ms: { upload, encoder, readback }, peakBytes: rt.memory().peak };
  } catch (e) {
    if (e instanceof GpuOutOfMemoryError) throw new ReefError(`the model does not fit in this adapter's memory at input ${input.shape.join('×')}: ${e.message}; try a smaller model input`, { cause: e });
    throw e;
  } finally {
    x.dispose();
    for (const o of outputs) o.tensor.dispose();
  }
}
