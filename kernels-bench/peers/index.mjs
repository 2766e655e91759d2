// Peer WebGPU engines for reef's matmul benchmark.
//
// Each peer exposes `matmul(a, b, M, K, N, dtype)`: row-major f32 host arrays in,
// row-major f32 host array out. One call = upload both inputs + multiply + read
// the product back, which is exactly what the caller times. Per-shape setup
// (ONNX model + session, shader compilation) happens on the first call for a
// shape and is cached, so the caller's warm-up call absorbs it.
//
// Peers:
//   tfjs-webgpu  @tensorflow/tfjs-backend-webgpu on the caller's dawn.node GPU object
//   ort-webgpu   onnxruntime-node WebGPU execution provider (ORT's own bundled Dawn)
//   ort-cpu      onnxruntime-node CPU execution provider (native CPU, NOT WebGPU; reference only)

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PEER_NAMES = ['tfjs-webgpu', 'ort-webgpu', 'ort-cpu'];

// ---------------------------------------------------------------------------
// f16 <-> f32 conversion (IEEE binary16 bits in a Uint16Array)

const cvtF32 = new Float32Array(1);
const cvtU32 = new Uint32Array(cvtF32.buffer);

function f32ToF16Bits(v) {
  cvtF32[0] = v;
  const x = cvtU32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    // subnormal half (or zero)
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // carry may roll into exponent: correct
  return sign | h;
}

function f16BitsToF32(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function toF16Bits(src) {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

export function fromF16Bits(src) {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16BitsToF32(src[i]);
  return out;
}

// ---------------------------------------------------------------------------
// Minimal protobuf writer for the handful of ONNX messages a one-node model needs.
// Wire types: 0 = varint, 2 = length-delimited. All integers here are small and
// non-negative, so plain JS numbers suffice for the varints.

const utf8 = new TextEncoder();

function varint(n) {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`protobuf varint out of range: ${n}`);
  const out = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

class Msg {
  constructor() { this.parts = []; }
  int(field, value) { this.parts.push(Uint8Array.from([...varint(field * 8 + 0), ...varint(value)])); return this; }
  bytes(field, data) { this.parts.push(Uint8Array.from([...varint(field * 8 + 2), ...varint(data.length)]), data); return this; }
  str(field, s) { return this.bytes(field, utf8.encode(s)); }
  msg(field, m) { return this.bytes(field, m.finish()); }
  finish() {
    let len = 0;
    for (const p of this.parts) len += p.length;
    const out = new Uint8Array(len);
    let o = 0;
    for (const p of this.parts) { out.set(p, o); o += p.length; }
    return out;
  }
}

// onnx.TensorProto.DataType
const ONNX_FLOAT = 1;
const ONNX_FLOAT16 = 10;

function valueInfo(name, elemType, dims) {
  // TensorShapeProto { repeated Dimension dim = 1 }, Dimension { int64 dim_value = 1 }
  const shape = new Msg();
  for (const d of dims) shape.msg(1, new Msg().int(1, d));
  // TypeProto.Tensor { int32 elem_type = 1; TensorShapeProto shape = 2 }
  const tensorType = new Msg().int(1, elemType).msg(2, shape);
  // TypeProto { Tensor tensor_type = 1 }
  const type = new Msg().msg(1, tensorType);
  // ValueInfoProto { string name = 1; TypeProto type = 2 }
  return new Msg().str(1, name).msg(2, type);
}

/** Serialized ONNX ModelProto: C[M,N] = MatMul(A[M,K], B[K,N]). */
export function buildMatMulModel(M, K, N, dtype = 'f32') {
  const et = dtype === 'f16' ? ONNX_FLOAT16 : ONNX_FLOAT;
  // NodeProto { input = 1; output = 2; name = 3; op_type = 4 }
  const node = new Msg().str(1, 'A').str(1, 'B').str(2, 'C').str(3, 'matmul').str(4, 'MatMul');
  // GraphProto { node = 1; name = 2; input = 11; output = 12 }
  const graph = new Msg()
    .msg(1, node)
    .str(2, 'reef_peer_matmul')
    .msg(11, valueInfo('A', et, [M, K]))
    .msg(11, valueInfo('B', et, [K, N]))
    .msg(12, valueInfo('C', et, [M, N]));
  // ModelProto { int64 ir_version = 1; string producer_name = 2; GraphProto graph = 7;
  //              repeated OperatorSetIdProto opset_import = 8 }
  // OperatorSetIdProto { string domain = 1; int64 version = 2 } ("" = ai.onnx)
  return new Msg()
    .int(1, 8) // IR version 8 (ONNX 1.10+)
    .str(2, 'reef-kernels-bench')
    .msg(7, graph)
    .msg(8, new Msg().str(1, '').int(2, 17))
    .finish();
}

// ---------------------------------------------------------------------------
// helpers

function errText(e) {
  const s = e && e.message ? e.message : String(e);
  return s.split('\n')[0].slice(0, 500);
}

function cjsDefault(mod, probe) {
  if (mod && mod.default && mod.default[probe] !== undefined) return mod.default;
  return mod;
}

function checkArgs(a, b, M, K, N) {
  if (a.length !== M * K) throw new Error(`matmul: a has ${a.length} elements, expected M*K = ${M * K}`);
  if (b.length !== K * N) throw new Error(`matmul: b has ${b.length} elements, expected K*N = ${K * N}`);
}

function randomF32(n, seed) {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

function refMatMul(a, b, M, K, N) {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let k = 0; k < K; k++) {
      const av = a[i * K + k];
      for (let j = 0; j < N; j++) c[i * N + j] += av * b[k * N + j];
    }
  return c;
}

function maxRelErr(got, ref) {
  let maxRef = 0;
  for (let i = 0; i < ref.length; i++) maxRef = Math.max(maxRef, Math.abs(ref[i]));
  let err = 0;
  for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(got[i] - ref[i]));
  return err / (maxRef || 1);
}

/** Run a tiny product through a freshly loaded peer; returns null if it is right. */
async function smokeTest(matmul, dtype) {
  const M = 8, K = 16, N = 8;
  const a = randomF32(M * K, 7), b = randomF32(K * N, 11);
  const c = await matmul(a, b, M, K, N, dtype);
  const e = maxRelErr(c, refMatMul(a, b, M, K, N));
  const tol = dtype === 'f16' ? 1e-2 : 1e-4;
  return e <= tol ? null : `wrong result on an 8x16x8 smoke test (max rel err ${e.toExponential(2)})`;
}

// ---------------------------------------------------------------------------
// navigator.gpu for tfjs (Node 20 has no global navigator)

// GPU*Usage / GPUMapMode flag namespaces, values from the WebGPU spec. Only defined
// when the host has not installed them (dawn.node's `globals` would also do).
const SPEC_FLAG_GLOBALS = {
  GPUBufferUsage: { MAP_READ: 0x1, MAP_WRITE: 0x2, COPY_SRC: 0x4, COPY_DST: 0x8, INDEX: 0x10, VERTEX: 0x20, UNIFORM: 0x40, STORAGE: 0x80, INDIRECT: 0x100, QUERY_RESOLVE: 0x200 },
  GPUMapMode: { READ: 0x1, WRITE: 0x2 },
  GPUTextureUsage: { COPY_SRC: 0x1, COPY_DST: 0x2, TEXTURE_BINDING: 0x4, STORAGE_BINDING: 0x8, RENDER_ATTACHMENT: 0x10 },
  GPUShaderStage: { VERTEX: 0x1, FRAGMENT: 0x2, COMPUTE: 0x4 },
  GPUColorWrite: { RED: 0x1, GREEN: 0x2, BLUE: 0x4, ALPHA: 0x8, ALL: 0xf },
};

async function webgpuGlobalsFor(gpu, globals) {
  if (globals) return globals;
  // The `webgpu` package (dawn.node) exports its classes as `globals`; resolved from
  // this folder it is reef's own copy in the repo root node_modules. Only use it
  // if the caller's GPU object really comes from that copy.
  try {
    const m = await import('webgpu');
    if (m.globals && m.globals.GPU && gpu instanceof m.globals.GPU) return m.globals;
  } catch { /* not resolvable from here */ }
  return null;
}

async function installNavigatorGpu(gpu, globals) {
  const nav = globalThis.navigator;
  if (!nav) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, writable: true, configurable: true });
  } else if (nav.gpu !== gpu) {
    try {
      Object.defineProperty(nav, 'gpu', { value: gpu, writable: true, configurable: true });
    } catch {
      Object.defineProperty(globalThis, 'navigator', { value: { gpu }, writable: true, configurable: true });
    }
  }
  if (globalThis.navigator.gpu !== gpu) throw new Error('could not install navigator.gpu');

  // tfjs also needs the WebGPU interface globals a browser has: the flag
  // namespaces (GPUBufferUsage, GPUMapMode, ...) and `GPUBuffer` (instanceof checks).
  const g = await webgpuGlobalsFor(gpu, globals);
  if (g) {
    for (const [k, v] of Object.entries(g)) if (globalThis[k] === undefined) globalThis[k] = v;
  }
  for (const [k, v] of Object.entries(SPEC_FLAG_GLOBALS)) {
    if (globalThis[k] === undefined) globalThis[k] = Object.freeze({ ...v });
  }
  if (globalThis.GPUBuffer === undefined) {
    // Last resort: take the class from a throwaway buffer.
    const adapter = await gpu.requestAdapter();
    if (!adapter) throw new Error('navigator.gpu.requestAdapter() returned null (no WebGPU adapter)');
    const device = await adapter.requestDevice();
    const buf = device.createBuffer({ size: 4, usage: 0x8 /* COPY_DST */ });
    globalThis.GPUBuffer = buf.constructor;
    buf.destroy();
    device.destroy();
  }
}

// ---------------------------------------------------------------------------
// tfjs-backend-webgpu

async function loadTfjsWebgpu({ gpu, globals }) {
  if (!gpu || typeof gpu.requestAdapter !== 'function') {
    throw new Error('no GPU object passed (loadPeers({ gpu }) needs the object from webgpu create())');
  }
  await installNavigatorGpu(gpu, globals);
  // tfjs's own backend factory dereferences a null adapter and logs a stack; check first.
  if (!(await gpu.requestAdapter({ powerPreference: 'high-performance' }))) {
    throw new Error('navigator.gpu.requestAdapter() returned null (no WebGPU adapter)');
  }
  let tf, versions;
  try {
    tf = cjsDefault(await import('@tensorflow/tfjs-core'), 'matMul');
    // The backend registers itself on import, only if navigator.gpu exists at that moment.
    await import('@tensorflow/tfjs-backend-webgpu');
    versions = tf.version_core ?? tf.version?.['tfjs-core'];
  } catch (e) {
    throw new Error(`@tensorflow/tfjs-core / tfjs-backend-webgpu not installed (run kernels-bench/peers/install.sh): ${errText(e)}`);
  }
  if (!tf.findBackendFactory('webgpu')) {
    throw new Error('tfjs webgpu backend did not register (tfjs-backend-webgpu was imported before navigator.gpu existed)');
  }
  // Never let tfjs hand small ops to its CPU backend: every op must run on WebGPU.
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  let ok;
  try {
    ok = await tf.setBackend('webgpu');
    await tf.ready();
  } catch (e) {
    throw new Error(`tfjs webgpu backend failed to initialise: ${errText(e)}`);
  }
  if (!ok || tf.getBackend() !== 'webgpu') throw new Error('tfjs could not initialise the webgpu backend (no adapter?)');
  const backend = tf.backend();
  const ai = backend.adapterInfo ?? {};
  const adapterDesc = [ai.vendor, ai.architecture, ai.device, ai.description].filter(Boolean).join(' ') || 'unknown adapter';

  async function matmul(a, b, M, K, N, dtype = 'f32') {
    if (dtype !== 'f32') throw new Error(`tfjs-webgpu: dtype ${dtype} not supported (tfjs has no float16 tensors)`);
    checkArgs(a, b, M, K, N);
    // Inputs are fresh host tensors every call: the backend uploads them to GPU
    // buffers when MatMul first reads them; data() maps a staging buffer back.
    const ta = tf.tensor2d(a, [M, K], 'float32');
    const tb = tf.tensor2d(b, [K, N], 'float32');
    const tc = tf.matMul(ta, tb);
    try {
      return await tc.data();
    } finally {
      // (tfjs caches compiled pipelines per shape itself; the first call compiles)
      ta.dispose(); tb.dispose(); tc.dispose();
    }
  }

  const bad = await smokeTest(matmul, 'f32');
  if (bad) throw new Error(`tfjs-webgpu: ${bad}`);
  return {
    name: 'tfjs-webgpu',
    dtypes: ['f32'],
    info: `@tensorflow/tfjs-backend-webgpu ${versions ?? '?'} on dawn.node (${adapterDesc})`,
    matmul,
    dispose() {
      try { tf.removeBackend('webgpu'); } catch { /* already gone */ }
    },
  };
}

// ---------------------------------------------------------------------------
// onnxruntime-node (WebGPU EP, optional CPU EP)

let ortModule;
async function importOrt() {
  if (!ortModule) {
    try {
      ortModule = cjsDefault(await import('onnxruntime-node'), 'InferenceSession');
    } catch (e) {
      throw new Error(`onnxruntime-node not installed (run kernels-bench/peers/install.sh): ${errText(e)}`);
    }
  }
  return ortModule;
}

const ORT_PROVIDER = { webgpu: 'WebGpuExecutionProvider', cpu: 'CPUExecutionProvider' };

function ortSessionOptions(ep, extra = {}) {
  return {
    executionProviders: [ep],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3, // errors only
    // Make ORT fail instead of silently placing a node the EP cannot take on the CPU EP.
    extra: { session: { disable_cpu_ep_fallback: ep === 'cpu' ? '0' : '1' } },
    ...extra,
  };
}

/**
 * Run a one-node model once with ORT's profiler on and return the execution
 * provider the profiler says ran the MatMul node (the authoritative answer to
 * "did it really run on WebGPU").
 */
async function ortProfiledProvider(ort, ep, dtype) {
  const dir = mkdtempSync(join(tmpdir(), 'reef-ort-prof-'));
  try {
    const M = 8, K = 16, N = 8;
    const session = await ort.InferenceSession.create(buildMatMulModel(M, K, N, dtype),
      ortSessionOptions(ep, { enableProfiling: true, profileFilePrefix: join(dir, 'p') }));
    const a = randomF32(M * K, 3), b = randomF32(K * N, 5);
    const feeds = dtype === 'f16'
      ? { A: new ort.Tensor('float16', toF16Bits(a), [M, K]), B: new ort.Tensor('float16', toF16Bits(b), [K, N]) }
      : { A: new ort.Tensor('float32', a, [M, K]), B: new ort.Tensor('float32', b, [K, N]) };
    await session.run(feeds);
    session.endProfiling();
    await session.release();
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    if (!files.length) return { provider: null, why: 'profiler wrote no file' };
    const events = JSON.parse(readFileSync(join(dir, files[0]), 'utf8'));
    const providers = new Set();
    for (const ev of events) {
      if (ev.cat === 'Node' && ev.args && ev.args.op_name === 'MatMul' && ev.args.provider) providers.add(ev.args.provider);
    }
    return { provider: [...providers].join(',') || null, why: providers.size ? '' : 'no MatMul node event in profile' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function loadOrt(ep) {
  const ort = await importOrt();
  const version = ort.env?.versions?.node ?? ort.env?.versions?.common ?? '?';
  const supported = typeof ort.listSupportedBackends === 'function' ? ort.listSupportedBackends() : null;
  if (supported && !supported.some((x) => x.name === ep && x.bundled)) {
    throw new Error(`onnxruntime-node ${version} has no bundled '${ep}' EP on ${process.platform}-${process.arch}`);
  }

  const sessions = new Map(); // `${dtype}:${M}x${K}x${N}` -> InferenceSession

  async function getSession(M, K, N, dtype) {
    const key = `${dtype}:${M}x${K}x${N}`;
    let s = sessions.get(key);
    if (!s) {
      s = await ort.InferenceSession.create(buildMatMulModel(M, K, N, dtype), ortSessionOptions(ep));
      sessions.set(key, s);
    }
    return s;
  }

  function makeMatmul(dtypes) {
    return async function matmul(a, b, M, K, N, dtype = 'f32') {
      if (!dtypes.includes(dtype)) throw new Error(`ort-${ep}: dtype ${dtype} not supported here`);
      checkArgs(a, b, M, K, N);
      const session = await getSession(M, K, N, dtype);
      // CPU-side tensors: ORT copies them to the EP's device inside run() and
      // copies the output back to host memory before run() returns.
      const feeds = dtype === 'f16'
        ? { A: new ort.Tensor('float16', toF16Bits(a), [M, K]), B: new ort.Tensor('float16', toF16Bits(b), [K, N]) }
        : { A: new ort.Tensor('float32', a, [M, K]), B: new ort.Tensor('float32', b, [K, N]) };
      const out = await session.run(feeds);
      const data = out.C.data;
      if (dtype === 'f16') return data instanceof Uint16Array ? fromF16Bits(data) : Float32Array.from(data);
      return data;
    };
  }

  // Verify placement with the profiler, then correctness, per dtype.
  const want = ORT_PROVIDER[ep];
  const dtypes = [];
  const notes = [];
  for (const dtype of ['f32', 'f16']) {
    let prof;
    try {
      prof = await ortProfiledProvider(ort, ep, dtype);
    } catch (e) {
      if (dtype === 'f32') throw new Error(`onnxruntime-node ${version} '${ep}' EP: session/run failed: ${errText(e)}`);
      notes.push(`f16 unavailable: ${errText(e)}`);
      continue;
    }
    if (prof.provider !== want) {
      const msg = `MatMul ran on ${prof.provider ?? '?'} instead of ${want}${prof.why ? ` (${prof.why})` : ''}`;
      if (dtype === 'f32') throw new Error(`onnxruntime-node ${version}: ${msg}`);
      notes.push(`f16 unavailable: ${msg}`);
      continue;
    }
    const bad = await smokeTest(makeMatmul([dtype]), dtype);
    if (bad) {
      if (dtype === 'f32') throw new Error(`ort-${ep}: ${bad}`);
      notes.push(`f16 unavailable: ${bad}`);
      continue;
    }
    dtypes.push(dtype);
  }

  const what = ep === 'webgpu' ? 'WebGPU EP (ORT\'s bundled Dawn)' : 'CPU EP (native CPU, not WebGPU)';
  return {
    name: `ort-${ep}`,
    dtypes,
    info: `onnxruntime-node ${version} ${what}; profiler: MatMul on ${want}${notes.length ? `; ${notes.join('; ')}` : ''}`,
    verifiedProvider: want,
    matmul: makeMatmul(dtypes),
    async dispose() {
      for (const s of sessions.values()) {
        try { await s.release(); } catch { /* ignore */ }
      }
      sessions.clear();
    },
  };
}

// ---------------------------------------------------------------------------

const LOADERS = {
  'tfjs-webgpu': (opts) => loadTfjsWebgpu(opts),
  'ort-webgpu': () => loadOrt('webgpu'),
  'ort-cpu': () => loadOrt('cpu'),
};

/**
 * Load the requested peers. Never throws because a peer cannot load: such a peer
 * is returned in `skipped` with the reason.
 */
export async function loadPeers({ gpu, globals, include = ['tfjs-webgpu', 'ort-webgpu'] } = {}) {
  const peers = [];
  const skipped = [];
  for (const name of include) {
    const load = LOADERS[name];
    if (!load) {
      skipped.push({ name, reason: `unknown peer (known: ${PEER_NAMES.join(', ')})` });
      continue;
    }
    try {
      peers.push(await load({ gpu, globals }));
    } catch (e) {
      skipped.push({ name, reason: errText(e) });
    }
  }
  return { peers, skipped };
}
