/**
 * What the adapter can do, and which kernel variants suit it.
 *
 * CPU adapters (Mesa lavapipe, SwiftShader) run a workgroup as a loop on one core, where every barrier
 * costs a context switch: kernels without workgroup memory win there. Real GPUs want the opposite.
 */
export interface Caps {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** The native API under WebGPU, as the host tells it (see Host.backend). */
  backend: string;
  /** A software/CPU adapter (lavapipe, SwiftShader, or a fallback adapter). */
  isCpu: boolean;
  f16: boolean;
  subgroups: boolean;
  timestamps: boolean;
  subgroupMinSize: number;
  subgroupMaxSize: number;
  maxWorkgroupStorageSize: number;
  maxInvocationsPerWorkgroup: number;
  maxWorkgroupsPerDimension: number;
  maxStorageBufferBindingSize: number;
  /** Byte alignment of a storage binding's offset: where a tensor bound in pieces may be cut. */
  minStorageBufferOffsetAlignment: number;
  maxBufferSize: number;
}

interface InfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  isFallbackAdapter?: boolean;
}

export function readCaps(info: InfoLike, features: ReadonlySet<string>, limits: GPUSupportedLimits, isFallback = false, backend = 'unknown'): Caps {
  const text = `${info.vendor ?? ''} ${info.architecture ?? ''} ${info.device ?? ''} ${info.description ?? ''}`;
  const isCpu = isFallback || info.isFallbackAdapter === true || info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(text);
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    backend,
    isCpu,
    f16: features.has('shader-f16'),
    subgroups: features.has('subgroups'),
    timestamps: features.has('timestamp-query'),
    subgroupMinSize: info.subgroupMinSize ?? 0,
    subgroupMaxSize: info.subgroupMaxSize ?? 0,
    maxWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
    maxInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
    maxWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    minStorageBufferOffsetAlignment: limits.minStorageBufferOffsetAlignment ?? 256,
    maxBufferSize: limits.maxBufferSize,
  };
}

/** Limit names that reef raises to the adapter's maximum when it creates the device. */
export const RAISED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxUniformBufferBindingSize',
  'maxBindGroups',
  'maxBindingsPerBindGroup',
] as const;

export const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;
