/** Errors raised by the GPU layer. Each names what was running, so a failure is never silent garbage. */

export class ReefError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReefError';
  }
}

/** No WebGPU adapter could be found on this host. */
export class NoAdapterError extends ReefError {
  constructor(host: string, detail = '') {
    super(
      `no WebGPU adapter found (host: ${host})${detail ? `: ${detail}` : ''}. ` +
        'Install your GPU\'s Vulkan/Metal/D3D12 driver, or on Debian/Ubuntu without a GPU run ' +
        '`bash scripts/setup.sh`, which installs Mesa\'s software Vulkan driver (lavapipe, mesa-vulkan-drivers ' +
        '>= 24 from bookworm-backports) and sets XDG_RUNTIME_DIR.',
    );
    this.name = 'NoAdapterError';
  }
}

/** A WebGPU validation or internal error, attributed to the kernels recorded in the failing batch. */
export class GpuValidationError extends ReefError {
  constructor(readonly kernels: string[], message: string) {
    super(`WebGPU error in kernel${kernels.length === 1 ? '' : 's'} ${kernels.join(', ') || '(none recorded)'}: ${message}`);
    this.name = 'GpuValidationError';
  }
}

export class GpuOutOfMemoryError extends ReefError {
  constructor(what: string, bytes: number, inUse: number, peak: number) {
    super(
      `out of GPU memory allocating ${fmtBytes(bytes)} for ${what} ` +
        `(reef holds ${fmtBytes(inUse)} in tensors, peak ${fmtBytes(peak)}); ` +
        'use a smaller batch or crop, or enable activation recomputation',
    );
    this.name = 'GpuOutOfMemoryError';
  }
}

export class DeviceLostError extends ReefError {
  constructor(reason: string, message: string, lastKernels: string[]) {
    super(
      `GPU device lost (${reason}): ${message}` +
        (lastKernels.length ? `; last kernels submitted: ${lastKernels.join(', ')}` : ''),
    );
    this.name = 'DeviceLostError';
  }
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
