/**
 * Kernels (src/gpu/kernel.ts): WGSL specialisation, reflection of bindings and uniform layout,
 * parameter packing, and the pipeline cache (one compile per distinct key).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { kernelLabel, packParams, specialise, type KernelKey, type ParamLayout, type ShaderFile } from '../../src/gpu/kernel';
import type { Runtime } from '../../src/gpu/runtime';
import { empty, tensor } from '../../src/tensor/create';
import type { Tensor } from '../../src/tensor/tensor';
import { testRuntime } from '../support/runtime';

/** dst = src·alpha·MUL + ADD + K, over n elements. */
const AFFINE: ShaderFile = {
  name: 'test-affine',
  code: `// test kernel
alias T = f32;

const K: u32 = 0u;
const WG = 64;

override MUL: f32 = 1.0;
override ADD: f32 = 0.0;

struct Params { n: u32, alpha: f32 }

@group(0) @binding(0) var<storage, read> src: array<T>;
@group(0) @binding(1) var<storage, read_write> dst: array<T>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.n) { return; }
  dst[i] = T(f32(src[i]) * p.alpha * MUL + ADD + f32(K));
}

@compute @workgroup_size(WG)
fn negate(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= p.n) { return; }
  dst[i] = -src[i];
}
`,
};

/** Reflection fixture: every binding kind and a uniform struct with scalars, a vector and an array. */
const REFLECT: ShaderFile = {
  name: 'test-reflect',
  code: `
struct Params {
  n: u32,
  alpha: f32,
  offset: i32,
  dir: vec2f,
  shape: array<vec4u, 2>,
  _pad0: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> unused: array<f32>;

@compute @workgroup_size(1)
fn main() {
  out[0] = a[0] + b[0] + p.alpha + f32(p.n) + f32(p.offset) + p.dir.y + f32(p.shape[1].w) + f32(p._pad0);
}

@compute @workgroup_size(1)
fn only_out() {
  out[0] = 1.0;
}
`,
};

describe('specialise', () => {
  it('returns f32 code unchanged', () => {
    expect(specialise(AFFINE)).toBe(AFFINE.code);
    expect(specialise(AFFINE, 'f32')).toBe(AFFINE.code);
  });

  it('f16 adds `enable f16;` first and swaps the alias line', () => {
    const code = specialise(AFFINE, 'f16');
    expect(code.startsWith('enable f16;\n')).toBe(true);
    expect(code).toMatch(/^alias T = f16;$/m);
    expect(code).not.toMatch(/alias T = f32;/);
    expect(code.split('\n').slice(1).join('\n')).toBe(AFFINE.code.replace('alias T = f32;', 'alias T = f16;'));
  });

  it('throws for f16 of a shader without the alias line, naming the shader', () => {
    const plain: ShaderFile = { name: 'no-alias', code: '@compute @workgroup_size(1) fn main() {}' };
    expect(() => specialise(plain, 'f16')).toThrow(/no-alias.*alias T = f32/);
    // an alias with another spelling is not the alias line either
    const other: ShaderFile = { name: 'other-alias', code: 'alias T = f16;\n' };
    expect(() => specialise(other, 'f16')).toThrow(/other-alias/);
  });

  it('replaces const lines, keeping a declared type and leaving untyped ones untyped', () => {
    const code = specialise(AFFINE, 'f32', { K: 7, WG: 128 });
    expect(code).toMatch(/^const K: u32 = 7u;$/m);
    expect(code).toMatch(/^const WG = 128;$/m);
    expect(code).not.toMatch(/const K: u32 = 0u;/);
    const typed: ShaderFile = { name: 'typed', code: 'const A: i32 = -1i;\nconst B: f32 = 2.5;\nconst AB: u32 = 3u;\n' };
    const t = specialise(typed, 'f32', { A: -4, B: 3 });
    expect(t).toBe('const A: i32 = -4i;\nconst B: f32 = 3.0;\nconst AB: u32 = 3u;\n');
  });

  it('throws for a const the shader does not declare, and for a non-integer value', () => {
    expect(() => specialise(AFFINE, 'f32', { MISSING: 1 })).toThrow(/test-affine.*const MISSING/);
    // a prefix of a declared name is not that name
    const s: ShaderFile = { name: 'prefix', code: 'const TM: u32 = 4u;\n' };
    expect(() => specialise(s, 'f32', { T: 2 })).toThrow(/const T /);
    expect(() => specialise(AFFINE, 'f32', { K: 1.5 })).toThrow(/integer/);
  });

  it('applies consts and the element type together', () => {
    const code = specialise(AFFINE, 'f16', { K: 2 });
    expect(code.startsWith('enable f16;\n')).toBe(true);
    expect(code).toMatch(/^const K: u32 = 2u;$/m);
    expect(code).toMatch(/^alias T = f16;$/m);
  });
});

describe('kernelLabel', () => {
  it('names shader, non-main entry and non-f32 element type', () => {
    expect(kernelLabel({ shader: AFFINE, entry: 'main' })).toBe('test-affine');
    expect(kernelLabel({ shader: AFFINE, entry: 'main', elem: 'f32' })).toBe('test-affine');
    expect(kernelLabel({ shader: AFFINE, entry: 'negate' })).toBe('test-affine.negate');
    expect(kernelLabel({ shader: AFFINE, entry: 'negate', elem: 'f16' })).toBe('test-affine.negate<f16>');
  });
});

describe('reflection and packParams', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await testRuntime();
  });

  it('reflects storage bindings (sorted, with access) and the uniform struct layout', () => {
    const k = rt.pipelines.get({ shader: REFLECT, entry: 'main' });
    expect(k.label).toBe('test-reflect');
    // `unused` is not referenced by main, so it is not part of its interface
    expect(k.buffers).toEqual([
      { name: 'a', binding: 0, kind: 'read-only-storage' },
      { name: 'b', binding: 1, kind: 'read-only-storage' }, // var<storage> defaults to read
      { name: 'out', binding: 4, kind: 'storage' },
    ]);
    const p = k.params!;
    expect(p).not.toBeNull();
    expect(p.binding).toBe(2);
    expect(p.name).toBe('p');
    expect(p.size).toBe(80);
    expect([...p.fields.values()]).toEqual([
      { name: 'n', offset: 0, count: 1, scalar: 'u32' },
      { name: 'alpha', offset: 4, count: 1, scalar: 'f32' },
      { name: 'offset', offset: 8, count: 1, scalar: 'i32' },
      { name: 'dir', offset: 16, count: 2, scalar: 'f32' },
      { name: 'shape', offset: 32, count: 8, scalar: 'u32' },
      { name: '_pad0', offset: 64, count: 1, scalar: 'u32' },
    ]);
  });

  it('reflects per entry point', () => {
    const k = rt.pipelines.get({ shader: REFLECT, entry: 'only_out' });
    expect(k.label).toBe('test-reflect.only_out');
    expect(k.buffers).toEqual([{ name: 'out', binding: 4, kind: 'storage' }]);
    expect(k.params).toBeNull();
  });

  it('packs parameters at the reflected offsets, padded to 16 bytes', () => {
    const layout = rt.pipelines.get({ shader: REFLECT, entry: 'main' }).params!;
    const bytes = packParams(layout, { n: 7, alpha: 1.5, offset: -3, dir: [0.25, -2], shape: [1, 2, 3, 4, 5, 6, 7, 8] }, 'k');
    expect(bytes.byteLength).toBe(80);
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    expect(dv.getUint32(0, true)).toBe(7);
    expect(dv.getFloat32(4, true)).toBe(1.5);
    expect(dv.getInt32(8, true)).toBe(-3);
    expect(dv.getUint32(12, true)).toBe(0); // padding before the vec2f
    expect(dv.getFloat32(16, true)).toBe(0.25);
    expect(dv.getFloat32(20, true)).toBe(-2);
    for (let i = 0; i < 8; i++) expect(dv.getUint32(32 + 4 * i, true)).toBe(i + 1);
    expect(dv.getUint32(64, true)).toBe(0); // _pad0 may be left out
    // a short list fills the front of an array field
    const short = new DataView(packParams(layout, { n: 1, alpha: 0, offset: 0, dir: 0, shape: [9, 8] }, 'k').buffer);
    expect([short.getUint32(32, true), short.getUint32(36, true), short.getUint32(40, true)]).toEqual([9, 8, 0]);
  });

  it('rounds the packed size up to 16 bytes', () => {
    const layout: ParamLayout = { binding: 0, name: 'p', size: 12, fields: new Map([['n', { name: 'n', offset: 0, count: 1, scalar: 'u32' }]]) };
    expect(packParams(layout, { n: 1 }, 'k').byteLength).toBe(16);
  });

  it('throws, naming the kernel, for a missing, unknown, oversized or non-u32 parameter', () => {
    const layout = rt.pipelines.get({ shader: REFLECT, entry: 'main' }).params!;
    const full = { n: 1, alpha: 1, offset: 1, dir: [1, 1], shape: [1] };
    const { alpha: _alpha, ...noAlpha } = full;
    expect(() => packParams(layout, noAlpha, 'my-kernel')).toThrow(/kernel my-kernel: parameter 'alpha' not given/);
    expect(() => packParams(layout, { ...full, beta: 2 }, 'my-kernel')).toThrow(/kernel my-kernel: unknown parameter 'beta'/);
    expect(() => packParams(layout, { ...full, dir: [1, 2, 3] }, 'my-kernel')).toThrow(/my-kernel.*'dir' takes 2 values, got 3/);
    expect(() => packParams(layout, { ...full, n: -1 }, 'my-kernel')).toThrow(/my-kernel.*'n' = -1 is not a u32/);
    expect(() => packParams(layout, { ...full, n: 1.5 }, 'my-kernel')).toThrow(/not a u32/);
    expect(() => packParams(layout, { ...full, n: 2 ** 32 }, 'my-kernel')).toThrow(/not a u32/);
    expect(() => packParams(layout, { ...full, n: 2 ** 32 - 1 }, 'my-kernel')).not.toThrow();
  });

  it('rejects shaders reef cannot bind, naming the kernel', () => {
    const group1: ShaderFile = {
      name: 'test-group1',
      code: '@group(1) @binding(0) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = 1.0; }',
    };
    expect(() => rt.pipelines.get({ shader: group1, entry: 'main' })).toThrow(/test-group1.*group 1/);
    const twoUniforms: ShaderFile = {
      name: 'test-two-uniforms',
      code:
        'struct P { x: f32 }\n@group(0) @binding(0) var<uniform> p: P;\n@group(0) @binding(1) var<uniform> q: P;\n' +
        '@group(0) @binding(2) var<storage, read_write> o: array<f32>;\n@compute @workgroup_size(1) fn main() { o[0] = p.x + q.x; }',
    };
    expect(() => rt.pipelines.get({ shader: twoUniforms, entry: 'main' })).toThrow(/test-two-uniforms.*more than one uniform/);
    const texture: ShaderFile = {
      name: 'test-texture',
      code:
        '@group(0) @binding(0) var tex: texture_2d<f32>;\n@group(0) @binding(1) var<storage, read_write> o: array<f32>;\n' +
        '@compute @workgroup_size(1) fn main() { o[0] = textureLoad(tex, vec2i(0, 0), 0).x; }',
    };
    expect(() => rt.pipelines.get({ shader: texture, entry: 'main' })).toThrow(/test-texture.*'tex' is not a buffer/);
    expect(() => rt.pipelines.get({ shader: AFFINE, entry: 'nope' })).toThrow(/test-affine.nope.*no @compute entry point 'nope'/);
  });
});

describe('pipeline cache', () => {
  let rt: Runtime;
  let src: Tensor;
  const n = 100;
  const input = Float32Array.from({ length: n }, (_, i) => i - 40);

  beforeAll(async () => {
    rt = await testRuntime();
    src = tensor(rt, input, [n]);
  });

  async function run(key: KernelKey, alpha = 1): Promise<Float32Array> {
    const dst = empty(rt, [n], key.elem ?? 'f32');
    const s = key.elem === 'f16' ? tensor(rt, input, [n], { dtype: 'f16' }) : src;
    rt.dispatch({ kernel: key, buffers: { src: s.buffer, dst: dst.buffer }, params: { n, alpha }, workgroups: [Math.ceil(n / 64)] });
    const out = await dst.read();
    dst.dispose();
    if (s !== src) s.dispose();
    return out;
  }

  const expectAffine = (out: Float32Array, f: (x: number) => number) => {
    const want = Array.from(input, f);
    const worst = Math.max(...want.map((w, i) => Math.abs(w - out[i]!)));
    expect(worst, `first values ${Array.from(out.subarray(0, 3))}, expected ${want.slice(0, 3)}`).toBeLessThan(1e-4);
  };

  it('compiles a key once, however often (and from however many key objects) it is dispatched', async () => {
    const before = rt.pipelines.size;
    expectAffine(await run({ shader: AFFINE, entry: 'main' }, 2), (x) => 2 * x);
    expect(rt.pipelines.size).toBe(before + 1);
    expectAffine(await run({ shader: AFFINE, entry: 'main' }, 3), (x) => 3 * x);
    expectAffine(await run({ shader: AFFINE, entry: 'main', elem: 'f32', consts: {}, overrides: {} }, 1), (x) => x);
    expect(rt.pipelines.size).toBe(before + 1);
    const k1 = rt.pipelines.get({ shader: AFFINE, entry: 'main' });
    const k2 = rt.pipelines.get({ shader: AFFINE, entry: 'main', elem: 'f32' });
    expect(k2).toBe(k1);
  });

  it('override values are part of the key, in any order', async () => {
    const before = rt.pipelines.size;
    expectAffine(await run({ shader: AFFINE, entry: 'main', overrides: { MUL: 2, ADD: 1 } }), (x) => 2 * x + 1);
    expect(rt.pipelines.size).toBe(before + 1);
    expectAffine(await run({ shader: AFFINE, entry: 'main', overrides: { ADD: 1, MUL: 2 } }), (x) => 2 * x + 1);
    expect(rt.pipelines.size).toBe(before + 1);
    expectAffine(await run({ shader: AFFINE, entry: 'main', overrides: { MUL: 2, ADD: 5 } }), (x) => 2 * x + 5);
    expect(rt.pipelines.size).toBe(before + 2);
  });

  it('consts, entry point and element type are part of the key', async () => {
    const before = rt.pipelines.size;
    expectAffine(await run({ shader: AFFINE, entry: 'main', consts: { K: 3 } }), (x) => x + 3);
    expect(rt.pipelines.size).toBe(before + 1);
    expectAffine(await run({ shader: AFFINE, entry: 'main', consts: { K: 4 } }), (x) => x + 4);
    expect(rt.pipelines.size).toBe(before + 2);
    expectAffine(await run({ shader: AFFINE, entry: 'negate' }), (x) => -x);
    expect(rt.pipelines.size).toBe(before + 3);
    if (rt.caps.f16) {
      const k = rt.pipelines.get({ shader: AFFINE, entry: 'main', elem: 'f16' });
      expect(k).not.toBe(rt.pipelines.get({ shader: AFFINE, entry: 'main' }));
      expect(k.label).toBe('test-affine<f16>');
      expectAffine(await run({ shader: AFFINE, entry: 'main', elem: 'f16' }, 0.5), (x) => 0.5 * x);
      expect(rt.pipelines.size).toBe(before + 4);
    }
    await rt.checkErrors();
  });

  it('does not mix up two different shaders that share a name', async () => {
    // Inline ShaderFiles are public API (DispatchCall.kernel.shader). The cache key is the shader's
    // *name*, not its code, so a second shader with the same name silently runs the first one's code.
    const plusOne: ShaderFile = {
      name: 'test-same-name',
      code: AFFINE.code.replace('dst[i] = T(f32(src[i]) * p.alpha * MUL + ADD + f32(K));', 'dst[i] = src[i] + 1.0;'),
    };
    const plusTwo: ShaderFile = {
      name: 'test-same-name',
      code: AFFINE.code.replace('dst[i] = T(f32(src[i]) * p.alpha * MUL + ADD + f32(K));', 'dst[i] = src[i] + 2.0;'),
    };
    expectAffine(await run({ shader: plusOne, entry: 'main' }), (x) => x + 1);
    expectAffine(await run({ shader: plusTwo, entry: 'main' }), (x) => x + 2);
  });
});
