/**
 * reef: a WebGPU compute engine for volumetric transformers. The public API is the same in Node,
 * Deno and the browser.
 */
export { Runtime, type RuntimeOptions, type DispatchCall } from './gpu/runtime.js';
export type { Caps } from './gpu/caps.js';
export type { MemoryStats } from './gpu/buffer-pool.js';
export type { KernelProfile, Work } from './gpu/profiler.js';
export { formatProfile } from './gpu/profiler.js';
export { ReefError, NoAdapterError, GpuValidationError, GpuOutOfMemoryError, DeviceLostError } from './gpu/errors.js';

export { Tensor, tidy, keep, type DType } from './tensor/tensor.js';
export { tensor, empty, randn, makeRng, type TensorOptions } from './tensor/create.js';
export { zeros, ones, full } from './tensor/fill.js';
export { noGrad, isGradEnabled } from './tensor/grad-mode.js';
export { backward, zeroGrad, releaseGraph } from './tensor/backward.js';

export { matmul, planMatmul, MATMUL_VARIANTS, type MatmulOptions, type MatmulVariant } from './ops/matmul.js';
export { add, sub, mul, div } from './ops/binary.js';
export { scale, neg, gelu, leakyRelu } from './ops/pointwise.js';
export { layerNorm } from './ops/layernorm.js';
export { instanceNorm } from './ops/instance-norm.js';
export { mergeGather3d, MERGE_ORDERS, type MergeOrder } from './ops/patch-merge.js';
export { padEnd } from './ops/shape.js';
export { softmax, logSoftmax } from './ops/softmax.js';
export { sum, mean, sumTo } from './ops/reduce.js';
export { reshape, permute, transpose, slice, concat, expand } from './ops/shape.js';
export { crossEntropySoft } from './ops/cross-entropy.js';
export { cast } from './ops/cast.js';
export { patchEmbed3d } from './nn/patch-embed3d.js';
export { PatchMerging3d } from './nn/patch-merging3d.js';
export { convTranspose3dK2 } from './nn/conv-transpose3d.js';
export { conv3d, type Conv3dOptions } from './ops/conv3d.js';
export { unetResBlock } from './nn/unet-res-block.js';
export { swinViTForward, swinBlock, swinStage, applyPatchMask, type SwinViTOptions, type PatchMask } from './models/swin3d/swin-vit.js';
export { coralBayEncoderForward, CORALBAY_MAP_NAMES, type CoralBayOutputs, type CoralBayOptions } from './models/swin3d/coralbay-encoder.js';
export { PRESETS, preset, paramShapes, countParams, swinViTConfig, describeConfig, type SwinViTConfig, type ModelConfig } from './models/swin3d/config.js';
export { Linear } from './nn/linear.js';
export { LayerNorm } from './nn/layernorm.js';
export { Module } from './nn/module.js';
export { AdamW, dinoParamGroups, DECAY_RULES, type AdamWOptions, type ParamGroup } from './train/adamw.js';
export { DinoSchedules, warmupCosine, cosineDecay, linearRamp, scaledLr, type DinoScheduleConfig } from './train/schedules.js';
export { emaUpdate } from './train/ema.js';
export { GradClipper, clipCoefficient, type GradClipOptions, type GradNormStats } from './train/grad-clip.js';
export { DynamicLossScaler, type LossScalerOptions, type LossScalerState } from './train/loss-scaler.js';
export { blockMask, ibotMasks, poolMask } from './train/masking.js';
export { lossPlotSvg, seriesFromMetrics, type LossSeries } from './train/loss-plot.js';
export { DinoTrainer, distributionStats, type DinoTrainerOptions, type DinoBatch, type DinoStepResult } from './train/dino-trainer.js';
export { makeBatch, makeBatches, volumeIndex, type BatchSpec } from './train/pretrain-batch.js';
export { RECIPES, recipe, recipeModel, type PretrainRecipe } from './train/pretrain-recipe.js';

// Self-supervised heads and losses.
export { l2Normalize } from './ops/l2-normalize.js';
export { temperedCrossEntropy, type TemperedCrossEntropyOptions, type ViewPairing } from './ops/tempered-cross-entropy.js';
export { centeredSoftmax, updateCenter } from './ops/dino-teacher.js';
export { sinkhornKnopp } from './ops/sinkhorn.js';
export { koleoNormalized } from './ops/koleo.js';
export { eppsPulley, type EppsPulleyOptions } from './ops/epps-pulley.js';
export { DinoHead, truncNormalInit, type DinoHeadOptions } from './nn/dino-head.js';
export { DinoLoss, type DinoLossOptions } from './losses/dino.js';
export { IbotPatchLoss, maskedTokens, type IbotLossOptions, type MaskedTokens } from './losses/ibot.js';
export { koleoLoss, type KoleoOptions } from './losses/koleo.js';
export { sigregLoss, sigregSlices, sigregSliceValues } from './losses/sigreg.js';

import { Runtime, type RuntimeOptions } from './gpu/runtime.js';

/** Gets a WebGPU device for this host (or wraps the one given) and returns reef's runtime on it. */
export function createRuntime(options: RuntimeOptions = {}): Promise<Runtime> {
  return Runtime.create(options);
}

// Weights on the host: safetensors from any byte source (files in Node via src/io/node-file.ts,
// Blobs in a browser, bytes anywhere).
export {
  readHeader as readSafetensorsHeader,
  readTensor as readSafetensorsTensor,
  writeSafetensors,
  safetensorsLayout,
  bytesSource,
  blobSource,
  type ByteSource,
  type SafetensorsHeader,
  type HostTensor,
  type WriteTensor,
} from './io/safetensors.js';

// Volumes on the host: NIfTI-1/2 (.nii, .nii.gz) as MONAI's LoadImage + EnsureChannelFirst give them.
export { decodeNifti, windowHu, NiftiError, type Volume } from './data/nifti.js';
// The pretraining data pipeline on the host (crops and augmentations; no Node-only imports).
export { Rng, type RngState } from './data/rng.js';
export { makePhantom } from './data/phantom.js';
export { resampleVolume } from './data/resample.js';
export { prepareVolume, VolumeCache } from './data/volume-cache.js';
export { sampleMultiCrop, DEFAULT_MULTICROP, type MultiCropOptions } from './data/multicrop.js';
export { augmentCrop, HU_WINDOWS, type AugmentOptions } from './data/augment.js';
export { decodeInv3 } from './data/inv3.js';
export { encodeNifti1 } from './data/nifti-write.js';
export { DataError } from './data/errors.js';
export { readTorchStateDict, readTorchArchive, readTorchTensor } from './io/torch-pt.js';
export { windowAttention3d } from './ops/window-attention3d.js';
export { windowAndShift, relativePositionIndex, stageRelativeIndex, shiftRegionLabels } from './models/swin3d/window-geometry.js';
export { loadWeights, canonicalKey, inferConfig, validateStateDict, weightLookup, type LoadOptions, type LoadedWeights } from './models/swin3d/state-dict.js';
export { initWeights } from './models/swin3d/init.js';
// Feature maps for viewing: the encoder as `reef features` runs it, and their principal components as colour.
export { encodeFeatures, featureStride, type FeatureMap, type EncodeOptions } from './models/swin3d/features.js';
export { pcaRgb, principalComponents, covariance, topEigenpairs, projectScores, resampleTrilinear, type Pca, type PcaRgb, type PcaRgbOptions, type EigenOptions } from './analysis/pca-rgb.js';
export { encodeNiftiRgba } from './analysis/nifti-rgba.js';
