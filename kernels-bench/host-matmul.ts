/**
 * The matmul benchmark that kernels-bench/hosts.mjs runs unchanged in Node (Dawn), Deno (wgpu) and
 * Chromium: square f32 products with the variant the runtime picks by default and the naive kernel
 * as the in-run baseline, plus the adapter's facts. It reaches reef only through src/index.ts and
 * uses no host API, so the one bundle built from it is what every host runs.
 *
 * Timing is of the GPU work, not of transfers: the inputs are uploaded once per size and each timed
 * call records the product and waits for the queue (`rt.sync()`). With timestamp queries (a runtime
 * created with `profile: true` on an adapter that has them) the median is of the kernels' GPU time;
 * otherwise of the wall time from recording the dispatch to the queue being done. Both are kept.
 */
import { MATMUL_VARIANTS, createRuntime, matmul, noGrad, planMatmul, tensor, type Caps, type Runtime, type Tensor } from '../src/index.js';
import { median } from './timing.js';

export interface HostBenchOptions {
  /** Square sizes n (n×n · n×n). */
  sizes: number[];
  /** Variants to time: 'default' (what the runtime picks for the shape) and/or names from MATMUL_VARIANTS. */
  variants: string[];
  /** Untimed calls first for each kernel (variant + tile constants) the first time it appears: pipeline compilation. */
  warmup: number;
  /** Timed calls per variant and size. */
  reps: number;
  /** Per size: once this much time was spent, stop after `minReps` repetitions. */
  budgetMs: number;
  minReps: number;
}

export const DEFAULT_HOST_BENCH: HostBenchOptions = { sizes: [256, 512, 1024], variants: ['default', 'naive'], warmup: 1, reps: 5, budgetMs: 10_000, minReps: 3 };

export type Timing = 'timestamps' | 'wall';

export interface HostRow {
  size: number;
  /** 'default' or a variant name, as asked for. */
  variant: string;
  /** The variant and shader that ran, e.g. 'regblock (matmul_regblock_vec4 TM=6,WG=16,TN=2)'. */
  kernel: string;
  timing: Timing;
  /** Median over repetitions: GPU time with timestamps, else wall time (see the module comment). */
  medianMs: number;
  /** 2n³ / medianMs. */
  gflops: number;
  /** Median wall time per call, recording to the queue being idle, whatever `timing` is. */
  wallMs: number;
  reps: number;
  /** Max relative error of 64 sampled outputs against float64 dot products (from the first timed call). */
  maxRelErr: number;
}

export interface HostFacts {
  /** reef's name for the host: node, deno or browser. */
  host: string;
  describe: string;
  caps: Caps;
  /** From a second requestAdapter with the runtime's preference (reef's runtime does not keep it); null if the host does not say. */
  isFallbackAdapter: boolean | null;
  adapterInfo: Record<string, string | number | boolean>;
  features: string[];
  timing: Timing;
  userAgent: string | null;
}

export interface HostResult {
  facts: HostFacts;
  rows: HostRow[];
  options: HostBenchOptions;
}

function randomMatrix(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

/** Max relative error of 64 sampled entries of c = a·b (n×n) against float64 dot products. */
function spotCheck(c: Float32Array, a: Float32Array, b: Float32Array, n: number): number {
  if (c.length !== n * n) return Infinity;
  let maxErr = 0;
  let maxRef = 0;
  for (let t = 0; t < 64; t++) {
    const i = (t * 7919 + 13) % n;
    const j = (t * 104729 + 5) % n;
    let ref = 0;
    for (let k = 0; k < n; k++) ref += a[i * n + k]! * b[k * n + j]!;
    const got = c[i * n + j]!;
    maxErr = Math.max(maxErr, Number.isFinite(got) ? Math.abs(got - ref) : Infinity);
    maxRef = Math.max(maxRef, Math.abs(ref));
  }
  return maxErr / Math.max(maxRef, 1e-30);
}

/** Adapter facts the runtime does not keep: the fallback flag, the info fields and the feature list. */
async function adapterFacts(rt: Runtime): Promise<Pick<HostFacts, 'isFallbackAdapter' | 'adapterInfo' | 'features'>> {
  const none = { isFallbackAdapter: null, adapterInfo: {}, features: [] };
  const gpu = await rt.host.gpu().catch(() => null);
  const adapter = await gpu?.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
  if (!adapter) return none;
  const info = (adapter.info ?? {}) as unknown as Record<string, unknown>;
  const adapterInfo: Record<string, string | number | boolean> = {};
  // GPUAdapterInfo's fields are prototype getters in browsers, so walk the names rather than Object.keys.
  for (const k of ['vendor', 'architecture', 'device', 'description', 'subgroupMinSize', 'subgroupMaxSize', 'isFallbackAdapter', 'backendType', 'driver']) {
    const v = info[k];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') adapterInfo[k] = v;
  }
  const flag = info.isFallbackAdapter ?? (adapter as unknown as { isFallbackAdapter?: unknown }).isFallbackAdapter;
  return { isFallbackAdapter: typeof flag === 'boolean' ? flag : null, adapterInfo, features: [...(adapter.features as ReadonlySet<string>)].sort() };
}

function kernelName(rt: Runtime, n: number, variant: string): string {
  const plan = planMatmul(rt, n, n, { transB: false }, variant === 'default' ? undefined : (variant as (typeof MATMUL_VARIANTS)[number]));
  const consts = Object.entries(plan.consts)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return `${plan.variant} (matmul_${plan.shader}${consts ? ` ${consts}` : ''})`;
}

/**
 * Times every asked variant at every size on `rt`. Repetitions are interleaved across variants
 * (1, 2, 1, 2, …) so drift in the machine's speed hits the default and the baseline alike.
 */
export async function benchMatmulOnHost(rt: Runtime, options: Partial<HostBenchOptions> = {}, log: (line: string) => void = () => {}): Promise<HostResult> {
  const o: HostBenchOptions = { ...DEFAULT_HOST_BENCH, ...options };
  if (!(o.reps >= 1 && o.warmup >= 0 && o.sizes.every((n) => Number.isInteger(n) && n >= 1))) throw new Error(`host matmul bench: need reps ≥ 1, warmup ≥ 0 and positive integer sizes (got ${JSON.stringify(o)})`);
  for (const v of o.variants) {
    if (v !== 'default' && !(MATMUL_VARIANTS as readonly string[]).includes(v)) throw new Error(`unknown matmul variant '${v}' (have default, ${MATMUL_VARIANTS.join(', ')})`);
  }
  const profiler = rt.profiler;
  const timing: Timing = profiler?.timed ? 'timestamps' : 'wall';
  const facts: HostFacts = {
    host: rt.host.name,
    describe: rt.describe(),
    caps: { ...rt.caps },
    ...(await adapterFacts(rt)),
    timing,
    userAgent: typeof navigator !== 'undefined' && typeof navigator.userAgent === 'string' ? navigator.userAgent : null,
  };
  log(`${facts.describe}; timing: ${timing === 'timestamps' ? 'GPU timestamps' : 'wall time to queue idle'}`);

  /** One call: the product, recorded and waited for; GPU ms from the profiler when it times. */
  const call = async (a: Tensor, b: Tensor, variant: string): Promise<{ wallMs: number; gpuMs: number | null; out: Tensor }> => {
    await profiler?.reset();
    const t0 = performance.now();
    const out = noGrad(() => (variant === 'default' ? matmul(a, b) : matmul(a, b, { variant: variant as (typeof MATMUL_VARIANTS)[number] })));
    await rt.sync();
    const wallMs = performance.now() - t0;
    let gpuMs: number | null = null;
    if (timing === 'timestamps') {
      // Every dispatch the product needed (one, unless a binding limit split it).
      gpuMs = (await rt.profile()).reduce((s, r) => s + (r.totalMs ?? 0), 0);
    }
    return { wallMs, gpuMs, out };
  };

  const rows: HostRow[] = [];
  // Kernels (variant + tile constants) already warmed up: a larger size with the same kernel reuses
  // the compiled pipeline, and on a slow adapter (SwiftShader: seconds per 1024² call) the saved
  // warm-up calls are most of the run.
  const warmed = new Set<string>();
  for (const n of o.sizes) {
    const ha = randomMatrix(n * n, 1);
    const hb = randomMatrix(n * n, 2);
    const a = tensor(rt, ha, [n, n]);
    const b = tensor(rt, hb, [n, n]);
    try {
      for (const v of o.variants) {
        const k = kernelName(rt, n, v);
        if (warmed.has(k)) continue;
        warmed.add(k);
        for (let w = 0; w < o.warmup; w++) (await call(a, b, v)).out.dispose();
      }
      const errs = new Map<string, number>();
      const gpu = new Map<string, number[]>(o.variants.map((v) => [v, []]));
      const wall = new Map<string, number[]>(o.variants.map((v) => [v, []]));
      const start = performance.now();
      for (let rep = 0; rep < o.reps; rep++) {
        if (rep >= o.minReps && performance.now() - start > o.budgetMs) break;
        for (const v of o.variants) {
          const r = await call(a, b, v);
          // Checked on the first timed call's output, read after its timing ended.
          if (rep === 0) errs.set(v, spotCheck(await r.out.read(), ha, hb, n));
          r.out.dispose();
          wall.get(v)!.push(r.wallMs);
          if (r.gpuMs !== null) gpu.get(v)!.push(r.gpuMs);
        }
      }
      for (const v of o.variants) {
        const wallMs = median(wall.get(v)!);
        const g = gpu.get(v)!;
        const medianMs = timing === 'timestamps' && g.length ? median(g) : wallMs;
        const row: HostRow = {
          size: n,
          variant: v,
          kernel: kernelName(rt, n, v),
          timing,
          medianMs,
          gflops: (2 * n ** 3) / medianMs / 1e6,
          wallMs,
          reps: wall.get(v)!.length,
          maxRelErr: errs.get(v)!,
        };
        rows.push(row);
        log(`${n}² ${row.kernel}: ${row.medianMs.toFixed(2)} ms (${timing}), ${row.gflops.toFixed(2)} GFLOP/s, wall ${row.wallMs.toFixed(2)} ms, ${row.reps} reps, err ${row.maxRelErr.toExponential(1)}`);
      }
    } finally {
      a.dispose();
      b.dispose();
    }
  }
  return { facts, rows, options: o };
}

/** Creates a profiling runtime on this host (timestamps where the adapter has them), runs, disposes. */
export async function runHostMatmul(options: Partial<HostBenchOptions> = {}, log: (line: string) => void = () => {}): Promise<HostResult> {
  const rt = await createRuntime({ profile: true });
  try {
    return await benchMatmulOnHost(rt, options, log);
  } finally {
    rt.dispose();
  }
}
