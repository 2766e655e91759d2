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
