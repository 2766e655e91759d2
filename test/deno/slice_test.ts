/**
 * The shared cases (cases.ts) under Deno's own WebGPU (wgpu). scripts/test-deno.mjs bundles this
 * file with esbuild and points its `../../src/index` import at the browser bundle of the library,
 * so what runs here is what a Deno or browser user imports. Each case is one Deno.test: outputs
 * against float64 within the Node suite's bounds. All outputs go to $REEF_DENO_OUT as JSON, for
 * test/host/deno.test.ts to hold against Node's.
 */
import * as reef from '../../src/index';
import { CASES, serialize, verify, type SerialCase } from './cases';

// Only the part of Deno's global this file uses (the Node type check has no Deno types).
declare const Deno: {
  test(t: { name: string; fn: () => void | Promise<void>; sanitizeOps?: boolean; sanitizeResources?: boolean; sanitizeExit?: boolean }): void;
  env: { get(name: string): string | undefined };
  writeTextFile(path: string, text: string): Promise<void>;
  version: { deno: string };
};

// The device lives across tests and wgpu keeps async work in flight between them.
const relaxed = { sanitizeOps: false, sanitizeResources: false, sanitizeExit: false };

const rt = await reef.createRuntime();
const cases: Record<string, SerialCase & { ms: number }> = {};
let adapter: Record<string, unknown> = {};

Deno.test({
  name: 'adapter and backend',
  ...relaxed,
  async fn() {
    const a = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!a) throw new Error('navigator.gpu.requestAdapter() gave no adapter');
    // GPUAdapterInfo has no backend field in wgpu; copy what it has (getters live on the prototype).
    const info: Record<string, unknown> = {};
    for (const k in a.info) info[k] = (a.info as unknown as Record<string, unknown>)[k];
    const requested = Deno.env.get('DENO_WEBGPU_BACKEND') ?? null;
    const features = [...a.features].sort();
    adapter = {
      deno: Deno.version.deno,
      info,
      adapterFeatures: features,
      deviceFeatures: [...rt.device.features].sort(),
      requestedBackend: requested,
      // The backend list restricts wgpu's instance: with only vulkan there, any adapter is Vulkan.
      // Without the variable wgpu falls back to GL silently; a Mesa GL adapter lists the ETC2/ASTC
      // texture formats and no shader-f16, which is the only hint the adapter gives.
      glHint: features.includes('texture-compression-etc2') && !features.includes('shader-f16'),
      reef: rt.describe(),
      caps: { backend: rt.caps.backend, f16: rt.caps.f16, subgroups: rt.caps.subgroups, timestamps: rt.caps.timestamps, isCpu: rt.caps.isCpu },
    };
    console.log(`adapter: ${JSON.stringify(adapter)}`);
    if (rt.host.name !== 'deno') throw new Error(`host is ${rt.host.name}, expected deno`);
    // reef requests the optional features the adapter lists, so its caps follow adapter.features.
    if (rt.caps.subgroups !== a.features.has('subgroups')) throw new Error('caps.subgroups differs from adapter.features');
    if (rt.caps.f16 !== a.features.has('shader-f16')) throw new Error('caps.f16 differs from adapter.features');
    if (requested === 'vulkan' && adapter.glHint) throw new Error('DENO_WEBGPU_BACKEND=vulkan, yet the adapter looks like GL');
    if (requested === 'vulkan' && rt.caps.backend !== 'vulkan') throw new Error(`caps.backend is '${rt.caps.backend}', expected vulkan`);
  },
});

for (const c of CASES) {
  Deno.test({
    name: c.name,
    ...relaxed,
    async fn() {
      const t0 = performance.now();
      const r = await c.run(reef, rt, { refs: true });
      cases[c.name] = { ...serialize(r), ms: Math.round(performance.now() - t0) };
      const { lines, failures } = verify(c.name, r);
      console.log(lines.join('\n'));
      if (failures.length) throw new Error(`over the bound: ${failures.map((f) => `${f.what} ${f.err.toExponential(2)} > ${f.bound.toExponential(1)}`).join('; ')}`);
    },
  });
}

Deno.test({
  name: 'outputs written',
  ...relaxed,
  async fn() {
    await rt.sync();
    const leaked = rt.memory().inUse;
    rt.dispose();
    const path = Deno.env.get('REEF_DENO_OUT');
    if (path) await Deno.writeTextFile(path, JSON.stringify({ host: 'deno', adapter, cases }));
    if (leaked !== 0) throw new Error(`${leaked} bytes still held by tensors after every case`);
  },
});
