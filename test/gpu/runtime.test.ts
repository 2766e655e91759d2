/**
 * The runtime (src/gpu/runtime.ts): dispatch validation, asynchronous GPU errors, batching of
 * dispatches until a read, readback, disposal, and running on a device the caller owns.
 *
 * Tests that provoke GPU errors or destroy things use their own runtime (`Runtime.create()`), so the
 * shared test runtime never carries an error into another test.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DeviceLostError, GpuValidationError, ReefError } from '../../src/gpu/errors';
import type { ShaderFile } from '../../src/gpu/kernel';
import { Runtime } from '../../src/gpu/runtime';
import { webHost } from '../../src/host/web';
import { empty, tensor } from '../../src/tensor/create';
import { full } from '../../src/tensor/fill';
import { add } from '../../src/ops/binary';
import { scale } from '../../src/ops/pointwise';
import { testRuntime } from '../support/runtime';

const COPY: ShaderFile = {
  name: 'test-copy',
  code: `
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < p.n) { dst[gid.x] = src[gid.x]; }
}
`,
};

const NO_PARAMS: ShaderFile = {
  name: 'test-no-params',
  code: `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { out[0] = 42.0; }
`,
};

const BROKEN: ShaderFile = {
  name: 'test-broken-wgsl',
  code: `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { out[0] = not_declared_anywhere; }
`,
};

describe('dispatch validation (thrown before anything reaches the GPU)', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await testRuntime();
  });

  it('an unbound buffer throws naming the kernel, the buffer and its binding', () => {
    const a = empty(rt, [8]);
    expect(() => rt.dispatch({ kernel: { shader: COPY, entry: 'main' }, buffers: { src: a.buffer }, params: { n: 8 }, workgroups: [1] })).toThrow(
      /kernel test-copy: buffer 'dst' \(binding 1\) not bound/,
    );
    a.dispose();
  });

  it('an unknown buffer name throws naming the kernel and the name', () => {
    const a = empty(rt, [8]);
    const b = empty(rt, [8]);
    expect(() =>
      rt.dispatch({ kernel: { shader: COPY, entry: 'main' }, buffers: { src: a.buffer, dst: b.buffer, extra: a.buffer }, params: { n: 8 }, workgroups: [1] }),
    ).toThrow(/kernel test-copy: it has no buffer binding 'extra'/);
    a.dispose();
    b.dispose();
  });

  it('missing or unknown parameters throw naming the kernel; a kernel without uniforms takes none', () => {
    const a = empty(rt, [8]);
    const b = empty(rt, [8]);
    const buffers = { src: a.buffer, dst: b.buffer };
    expect(() => rt.dispatch({ kernel: { shader: COPY, entry: 'main' }, buffers, workgroups: [1] })).toThrow(/kernel test-copy: parameter 'n' not given/);
    expect(() => rt.dispatch({ kernel: { shader: COPY, entry: 'main' }, buffers, params: { n: 8, m: 1 }, workgroups: [1] })).toThrow(
      /kernel test-copy: unknown parameter 'm'/,
    );
    expect(() => rt.dispatch({ kernel: { shader: NO_PARAMS, entry: 'main' }, buffers: { out: b.buffer }, params: { n: 1 }, workgroups: [1] })).toThrow(
      /kernel test-no-params: it takes no parameters/,
    );
    a.dispose();
    b.dispose();
  });

  it('workgroups above maxComputeWorkgroupsPerDimension throw, in every dimension', () => {
    const a = empty(rt, [8]);
    const b = empty(rt, [8]);
    const max = rt.caps.maxWorkgroupsPerDimension;
    expect(max).toBe(rt.device.limits.maxComputeWorkgroupsPerDimension);
    const call = (workgroups: [number, number?, number?]) => () =>
      rt.dispatch({ kernel: { shader: COPY, entry: 'main' }, buffers: { src: a.buffer, dst: b.buffer }, params: { n: 8 }, workgroups });
    expect(call([max + 1])).toThrow(new RegExp(`kernel test-copy: dispatch ${max + 1}×1×1 exceeds ${max} workgroups per dimension`));
    expect(call([1, max + 1])).toThrow(/exceeds/);
    expect(call([1, 1, max + 1])).toThrow(/exceeds/);
    a.dispose();
    b.dispose();
  });

  it('negative, fractional or NaN workgroup counts throw a ReefError naming the kernel', async () => {
    // Only `> max` is checked: 1.5 is truncated by WebIDL to 1 workgroup (a forgotten Math.ceil
    // silently skips the tail of the data) and -1 / NaN throw Dawn's bare TypeError from
    // dispatchWorkgroups, after the pass has been begun. A runtime of its own, as the pass is left open.
    const own = await Runtime.create();
    try {
      const b = empty(own, [8]);
      const call = (workgroups: [number, number?, number?]) => () =>
        own.dispatch({ kernel: { shader: NO_PARAMS, entry: 'main' }, buffers: { out: b.buffer }, workgroups });
      const outcome = (workgroups: [number, number?, number?]) => {
        try {
          call(workgroups)();
          return 'accepted';
        } catch (e) {
          return e instanceof ReefError && /test-no-params/.test(e.message) ? 'ReefError' : `${(e as Error).name}: ${(e as Error).message.split('\n')[0]}`;
        }
      };
      expect({ '1.5': outcome([1.5]), '-1': outcome([-1]), 'NaN': outcome([1, NaN]) }).toEqual({ '1.5': 'ReefError', '-1': 'ReefError', 'NaN': 'ReefError' });
    } finally {
      own.dispose();
    }
  });

  it('a binding larger than maxStorageBufferBindingSize throws naming the buffer', () => {
    const a = empty(rt, [8]);
    const b = empty(rt, [8]);
    const max = rt.caps.maxStorageBufferBindingSize;
    expect(() =>
      rt.dispatch({
        kernel: { shader: COPY, entry: 'main' },
        buffers: { src: { buffer: a.buffer, size: max + 4 }, dst: b.buffer },
        params: { n: 8 },
        workgroups: [1],
      }),
    ).toThrow(/test-copy: 'src' binds \d+ bytes, over the adapter's maxStorageBufferBindingSize/);
    a.dispose();
    b.dispose();
  });

  it('binds buffer slices at their offset', async () => {
    const a = tensor(rt, Float32Array.from({ length: 128 }, (_, i) => i), [128]);
    const b = full(rt, [64], -1);
    rt.dispatch({
      kernel: { shader: COPY, entry: 'main' },
      buffers: { src: { buffer: a.buffer, offset: 256, size: 64 * 4 }, dst: b.buffer },
      params: { n: 64 },
      workgroups: [1],
    });
    const out = await b.read();
    expect(Array.from(out)).toEqual(Array.from({ length: 64 }, (_, i) => i + 64));
    a.dispose();
    b.dispose();
  });

  it('a zero-size dispatch records nothing', async () => {
    await rt.sync();
    const b = full(rt, [4], 7);
    await rt.sync();
    rt.dispatch({ kernel: { shader: NO_PARAMS, entry: 'main' }, buffers: { out: b.buffer }, workgroups: [0] });
    expect(Array.from(await b.read())).toEqual([7, 7, 7, 7]);
    b.dispose();
  });
});

describe('GPU errors surface as GpuValidationError naming the kernel', () => {
  let own: Runtime | null = null;
  afterEach(() => {
    own?.dispose();
    own = null;
  });

  it('a WGSL compile error of a dispatched kernel is thrown by sync()', async () => {
    own = await Runtime.create();
    const out = empty(own, [4]);
    own.dispatch({ kernel: { shader: BROKEN, entry: 'main' }, buffers: { out: out.buffer }, workgroups: [1] });
    const err = await own.sync().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GpuValidationError);
    expect((err as GpuValidationError).message).toContain('test-broken-wgsl');
    expect((err as GpuValidationError).kernels).toContain('test-broken-wgsl');
  });

  it('a WGSL compile error is reported by checkErrors() or sync() even before any dispatch', async () => {
    // PipelineCache.compile reports the shader's error from its own popErrorScope promise, which
    // neither checkErrors() nor sync() waits for: right after the pipeline is made both return
    // cleanly and the error turns up later, attributed to whatever runs next.
    own = await Runtime.create();
    own.pipelines.get({ shader: BROKEN, entry: 'main' });
    const viaCheck = await own.checkErrors().then(
      () => null,
      (e: unknown) => e,
    );
    const viaSync =
      viaCheck ??
      (await own.sync().then(
        () => null,
        (e: unknown) => e,
      ));
    expect(viaSync, 'neither checkErrors() nor sync() reported the compile error').toBeInstanceOf(GpuValidationError);
    expect((viaSync as Error).message).toContain('test-broken-wgsl');
  });

  it('an invalid dispatch (one buffer bound read-only and writable) is thrown once, then the runtime works on', async () => {
    own = await Runtime.create();
    const a = tensor(own, [1, 2, 3, 4], [4]);
    own.dispatch({ kernel: { shader: COPY, entry: 'main' }, buffers: { src: a.buffer, dst: a.buffer }, params: { n: 4 }, workgroups: [1] });
    const err = await own.sync().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GpuValidationError);
    expect((err as Error).message).toMatch(/kernel test-copy/);
    await expect(own.checkErrors()).resolves.toBeUndefined(); // reported once
    const b = scale(a, 2);
    expect(Array.from(await b.read())).toEqual([2, 4, 6, 8]);
  });

  it('an error outside any dispatch (uncaptured) is thrown by the next sync()', async () => {
    own = await Runtime.create();
    own.device.createBuffer({ size: 4, usage: 0 }); // invalid: no usage
    await expect(own.sync()).rejects.toThrow(GpuValidationError);
    await expect(own.sync()).resolves.toBeUndefined();
  });

  it('a read after the device is lost throws DeviceLostError; dispose still works', async () => {
    own = await Runtime.create();
    const a = tensor(own, [1, 2], [2]);
    own.device.destroy();
    await own.device.lost;
    await expect(a.read()).rejects.toThrow(DeviceLostError);
    expect(() => scale(a, 2)).toThrow(DeviceLostError);
    expect(() => own!.dispose()).not.toThrow();
  });
});

describe('batching and readback', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await testRuntime();
  });

  it('records chained dispatches and submits them only when a result is read', async () => {
    await rt.sync();
    const submit = vi.spyOn(rt.device.queue, 'submit');
    const wait = vi.spyOn(rt.host, 'waitForGpu');
    try {
      const n = 3000;
      const a = full(rt, [n], 3); // fill
      const b = scale(a, 2); // 6
      const c = scale(b, -0.5, 1); // -2
      const d = add(c, a); // 1
      expect(submit).not.toHaveBeenCalled();
      expect(wait).not.toHaveBeenCalled();
      // a buffer released now is parked (commands are still being recorded), not pooled
      const pooled = rt.memory().pooled;
      b.dispose();
      expect(rt.memory().pooled).toBe(pooled);
      const out = await d.read();
      expect(submit).toHaveBeenCalledTimes(1);
      expect(wait).toHaveBeenCalledTimes(1);
      expect(out.every((v) => v === 1)).toBe(true);
      expect(Array.from((await c.read()).subarray(0, 3))).toEqual([-2, -2, -2]);
      for (const t of [a, c, d]) t.dispose();
    } finally {
      submit.mockRestore();
      wait.mockRestore();
    }
  });

  it('submits by itself every maxBatch dispatches', async () => {
    const small = await Runtime.create({ maxBatch: 4 });
    try {
      const submit = vi.spyOn(small.device.queue, 'submit');
      try {
        let x = full(small, [16], 1);
        for (let i = 0; i < 8; i++) {
          const y = scale(x, 2);
          x.dispose();
          x = y;
        }
        // 9 dispatches with maxBatch 4: two automatic submits, the rest waits for the read
        expect(submit).toHaveBeenCalledTimes(2);
        expect((await x.read())[0]).toBe(256);
        expect(submit).toHaveBeenCalledTimes(3);
        x.dispose();
      } finally {
        submit.mockRestore();
      }
    } finally {
      small.dispose();
    }
  });

  it('concurrent reads each get their own data', async () => {
    const ts = [1, 2, 3, 4].map((v) => full(rt, [v * 100 + 1], v));
    const outs = await Promise.all(ts.map((t) => t.read()));
    outs.forEach((o, i) => {
      expect(o.length).toBe((i + 1) * 100 + 1);
      expect(o.every((v) => v === i + 1)).toBe(true);
    });
    ts.forEach((t) => t.dispose());
  });

  it('reads an empty tensor and a tensor of odd byte length', async () => {
    const e = tensor(rt, [], [0]);
    expect(Array.from(await e.read())).toEqual([]);
    e.dispose();
    if (rt.caps.f16) {
      const h = tensor(rt, [1, 2, 3], [3], { dtype: 'f16' }); // 6 bytes
      expect(Array.from(await h.read())).toEqual([1, 2, 3]);
      h.dispose();
    }
  });

  it('rt.write of a non-fresh buffer keeps order with recorded dispatches', async () => {
    const a = tensor(rt, [1, 1, 1, 1], [4]);
    const b = scale(a, 10); // recorded, reads a
    rt.write(a.buffer, new Float32Array([5, 5, 5, 5])); // submits b's dispatch first
    expect(Array.from(await b.read())).toEqual([10, 10, 10, 10]);
    expect(Array.from(await a.read())).toEqual([5, 5, 5, 5]);
    a.dispose();
    b.dispose();
  });

  it('describe() names the adapter, the host and the native API under it', () => {
    expect(rt.describe()).toMatch(/host node, /);
    if (process.platform === 'linux' && !process.env.REEF_DAWN_FLAGS) expect(rt.caps.backend).toBe('vulkan');
    expect(rt.describe()).toContain(rt.caps.backend);
  });

  it("Deno's backend: the one DENO_WEBGPU_BACKEND names, else GL is told by its features", () => {
    const g = globalThis as { Deno?: unknown };
    const had = 'Deno' in g;
    let value: string | undefined;
    g.Deno = { env: { get: (n: string) => (n === 'DENO_WEBGPU_BACKEND' ? value : undefined) } };
    try {
      const host = webHost();
      expect(host.name).toBe('deno');
      value = 'vulkan';
      expect(host.backend(new Set(['shader-f16']))).toBe('vulkan');
      value = undefined;
      expect(host.backend(new Set(['shader-f16', 'timestamp-query']))).toBe('vulkan (inferred)');
      expect(host.backend(new Set(['texture-compression-etc2', 'texture-compression-astc']))).toMatch(/^gl \(wgpu fell back/);
    } finally {
      if (!had) delete g.Deno;
    }
  });
});

describe('disposal and a device owned by the caller', () => {
  it('a disposed runtime refuses work with a clear error; dispose twice is safe', async () => {
    const own = await Runtime.create();
    const a = tensor(own, [1], [1]);
    own.dispose();
    own.dispose();
    expect(own.isDisposed).toBe(true);
    expect(() => scale(a, 2)).toThrow(/runtime has been disposed/);
    await expect(a.read()).rejects.toThrow(/runtime has been disposed/);
    await expect(own.sync()).rejects.toThrow(ReefError);
  });

  it('dispose() returns pooled buffers', async () => {
    const own = await Runtime.create();
    const a = full(own, [1000], 1);
    await own.sync();
    a.dispose();
    expect(own.memory().pooled).toBeGreaterThan(0);
    own.dispose();
    expect(own.memory().pooled).toBe(0);
    expect(own.memory().allocated).toBe(0);
  });

  it('Runtime.create({ device }) runs on the given device and does not destroy it on dispose', async () => {
    const owner = await Runtime.create();
    try {
      const guest = await Runtime.create({ device: owner.device });
      expect(guest.device).toBe(owner.device);
      expect(guest.caps.maxWorkgroupsPerDimension).toBe(owner.caps.maxWorkgroupsPerDimension);
      expect(guest.caps.f16).toBe(owner.caps.f16);
      const g = scale(tensor(guest, [1, 2, 3], [3]), 3);
      expect(Array.from(await g.read())).toEqual([3, 6, 9]);
      guest.dispose();
      expect(guest.isDisposed).toBe(true);
      // the owner's device still works
      const o = scale(tensor(owner, [1, 2, 3], [3]), -1);
      expect(Array.from(await o.read())).toEqual([-1, -2, -3]);
      await owner.sync();
      const lost = await Promise.race([owner.device.lost.then(() => 'lost'), new Promise((r) => setTimeout(() => r('alive'), 50))]);
      expect(lost).toBe('alive');
    } finally {
      owner.dispose();
    }
  });
});
