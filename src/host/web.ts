/** Browser and Deno hosts: both expose WebGPU as `navigator.gpu`. */
import type { Host } from './types.js';

interface DenoGlobal {
  env: { get(name: string): string | undefined };
}

export function webHost(): Host {
  const deno = (globalThis as { Deno?: DenoGlobal }).Deno;
  return {
    name: deno ? 'deno' : 'browser',
    async gpu() {
      const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
      if (!gpu) throw new Error('navigator.gpu is missing: this host has no WebGPU');
      return gpu;
    },
    waitForGpu: (p) => p,
    backend(features) {
      if (!deno) return 'chosen by the browser';
      const asked = this.env('DENO_WEBGPU_BACKEND');
      // With a backend named, wgpu uses only that one (no adapter otherwise).
      if (asked && !asked.includes(',')) return asked;
      // Unset, wgpu falls back to GL without a word when there is no Vulkan driver: GL shows
      // itself by ETC2/ASTC texture compression and no shader-f16.
      if (!features.has('shader-f16') && features.has('texture-compression-etc2')) return 'gl (wgpu fell back from Vulkan: no shader-f16; set DENO_WEBGPU_BACKEND=vulkan)';
      return 'vulkan (inferred)';
    },
    env(name) {
      if (!deno) return undefined;
      try {
        return deno.env.get(name);
      } catch {
        return undefined; // no --allow-env
      }
    },
  };
}
