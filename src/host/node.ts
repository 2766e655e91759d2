/**
 * Node host: WebGPU through Dawn (npm package `webgpu`).
 *
 * Two dawn.node facts shape this file:
 *  - The object returned by `create()` must stay strongly referenced while any device made from it
 *    lives; if it is garbage-collected, Dawn's ProcessEvents touches freed memory and aborts.
 *    It is kept in a module-level map for the life of the process.
 *  - While a promise is pending, dawn.node polls by rescheduling itself with the global
 *    `setImmediate`, which keeps one core busy. On a CPU adapter (lavapipe) that core is stolen
 *    from the kernels, so during our own waits `setImmediate` is swapped for a version that spins
 *    for ~2 ms, then polls every ~1 ms.
 */
import type { Host } from './types.js';

const DEFAULT_FLAGS = [
  // Dawn rounds timestamps to ~65 µs unless this is off; the profiler needs them exact.
  'disable-dawn-features=timestamp_quantization',
  // Dawn keeps f16 off on NVIDIA's Vulkan driver by default.
  'enable-dawn-features=vulkan_enable_f16_on_nvidia',
];

const gpuByFlags = new Map<string, GPU>();

async function dawnGpu(extraFlags: string[]): Promise<GPU> {
  const flags = [...DEFAULT_FLAGS, ...extraFlags];
  const key = flags.join('\n');
  const known = gpuByFlags.get(key);
  if (known) return known;
  let mod: { create(flags: string[]): GPU };
  try {
    mod = (await import('webgpu')) as unknown as { create(flags: string[]): GPU };
  } catch (e) {
    throw new Error(`cannot load Dawn for Node (npm package 'webgpu'): ${(e as Error).message}. Run 'npm install'.`, { cause: e });
  }
  const gpu = mod.create(flags);
  gpuByFlags.set(key, gpu);
  return gpu;
}

const SPIN_MS = 2;
const POLL_MS = 1;
let waiters = 0;
let waitStart = 0;
/** The `setImmediate` in place when the current wait began, restored when it ends. */
let outerSetImmediate: typeof globalThis.setImmediate = globalThis.setImmediate;

function backoffSetImmediate(fn: (...args: unknown[]) => void, ...args: unknown[]): unknown {
  if (performance.now() - waitStart < SPIN_MS) return outerSetImmediate(fn, ...args);
  return setTimeout(fn, POLL_MS, ...args);
}

async function waitWithBackoff<T>(work: Promise<T>): Promise<T> {
  if (waiters++ === 0) {
    waitStart = performance.now();
    outerSetImmediate = globalThis.setImmediate;
    (globalThis as { setImmediate: unknown }).setImmediate = backoffSetImmediate;
  }
  try {
    return await work;
  } finally {
    if (--waiters === 0) globalThis.setImmediate = outerSetImmediate;
  }
}

export function nodeHost(): Host {
  const env = (name: string) => process.env[name];
  const extra = (env('REEF_DAWN_FLAGS') ?? '').split(/\s+/).filter(Boolean);
  const backoff = env('REEF_POLL_BACKOFF') !== '0';
  return {
    name: 'node',
    gpu: () => dawnGpu(extra),
    waitForGpu: backoff ? waitWithBackoff : (p) => p,
    env,
    // Dawn picks the platform's native API unless REEF_DAWN_FLAGS asks for another.
    backend: () => {
      const asked = /backend=(\w+)/.exec(extra.join(' '))?.[1];
      return asked ?? ({ darwin: 'metal', win32: 'd3d12' } as Record<string, string>)[process.platform] ?? 'vulkan';
    },
  };
}
