/**
 * The runtime: one WebGPU device and everything reef keeps for it — buffer pool, pipeline cache,
 * the command encoder that batches dispatches, uniform parameters, profiler and error reporting.
 *
 * Dispatches are recorded into one command encoder and submitted together (every `maxBatch`
 * dispatches, or when a result is read back). Nothing is read back unless the caller asks.
 */
import { detectHost, type Host } from '../host/index.js';
import { BufferPool, type MemoryStats } from './buffer-pool.js';
import { readCaps, RAISED_LIMITS, WANTED_FEATURES, type Caps } from './caps.js';
import { DeviceLostError, GpuValidationError, NoAdapterError, ReefError } from './errors.js';
import { BufferUsage, MapMode } from './flags.js';
import { kernelLabel, packParams, PipelineCache, type KernelKey } from './kernel.js';
import { formatProfile, Profiler, type KernelProfile, type Work } from './profiler.js';

export interface RuntimeOptions {
  /** Use this device (e.g. one shared with a renderer) instead of requesting one. */
  device?: GPUDevice;
  /** Use this adapter to request the device. */
  adapter?: GPUAdapter;
  powerPreference?: GPUPowerPreference;
  /** Time every dispatch with timestamp queries (default: env REEF_PROFILE=1). */
  profile?: boolean;
  /** Dispatches recorded before an automatic submit (default 256). */
  maxBatch?: number;
  /**
   * Use at most this many workgroups per grid dimension (below the adapter's limit), so tests can
   * exercise the paths that split large problems over several dispatches at small sizes.
   */
  maxWorkgroupsPerDimension?: number;
  /** Bind at most this many bytes per storage binding (below the adapter's limit), so tests can
   * exercise the ops that bind large tensors in pieces at small sizes. */
  maxStorageBufferBindingSize?: number;
  host?: Host;
}

export interface BufferSlice {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}

export interface DispatchCall {
  kernel: KernelKey;
  /** Storage buffers by the names the shader declares. */
  buffers: Record<string, GPUBuffer | BufferSlice>;
  /** Uniform parameters by the member names of the shader's uniform struct. */
  params?: Record<string, number | readonly number[]>;
  workgroups: readonly [number, number?, number?];
  /** Work done, for the profiler's GFLOP/s and GB/s. */
  work?: Work;
}

const UNIFORM_CACHE_MAX = 4096;
/** Released-while-recording bytes that trigger a submit, so they can be reused (see BufferPool). */
const PARK_LIMIT_BYTES = 64 * 2 ** 20;

export class Runtime {
  readonly caps: Caps;
  readonly pool: BufferPool;
  readonly pipelines: PipelineCache;
  readonly profiler: Profiler | null;
  /** A small buffer bound where a kernel's optional input is absent. */
  readonly dummy: GPUBuffer;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private batchLabels: string[] = [];
  private lastSubmitted: string[] = [];
  private readonly maxBatch: number;
  private readonly uniforms = new Map<string, GPUBuffer>();
  private retiredUniforms: GPUBuffer[] = [];
  private readonly staging = new Map<number, GPUBuffer[]>();
  private pendingScopes: Promise<void>[] = [];
  private pendingError: Error | null = null;
  private lost: DeviceLostError | null = null;
  private disposed = false;
  private readonly onUncaptured = (ev: Event) => {
    if (this.disposed) return;
    const err = (ev as GPUUncapturedErrorEvent).error;
    this.fail(new GpuValidationError(this.batchLabels.length ? this.batchLabels : this.lastSubmitted, err.message));
  };

  private constructor(
    readonly host: Host,
    readonly device: GPUDevice,
    caps: Caps,
    private readonly ownsDevice: boolean,
    profile: boolean,
    maxBatch: number,
  ) {
    this.caps = caps;
    this.maxBatch = maxBatch;
    const track = (check: Promise<void>) => void this.pendingScopes.push(check);
    this.pool = new BufferPool(device, caps.maxBufferSize, caps.maxStorageBufferBindingSize, () => this.encoder !== null, (e) => this.fail(e), track, PARK_LIMIT_BYTES, () => this.flush());
    this.pipelines = new PipelineCache(device, (label, e) => this.fail(new GpuValidationError([label], e.message)), track);
    this.profiler = profile ? new Profiler(device, caps.timestamps, host.waitForGpu) : null;
    this.dummy = device.createBuffer({ size: 16, usage: BufferUsage.STORAGE, label: 'reef-dummy' });
    void device.lost.then((info) => {
      if (this.disposed) return;
      this.lost = new DeviceLostError(info.reason ?? 'unknown', info.message, this.lastSubmitted);
    });
    device.addEventListener?.('uncapturederror', this.onUncaptured);
  }

  static async create(options: RuntimeOptions = {}): Promise<Runtime> {
    const host = options.host ?? (await detectHost());
    const env = (n: string) => host.env(n);
    const profile = options.profile ?? env('REEF_PROFILE') === '1';
    const maxBatch = options.maxBatch ?? Number(env('REEF_MAX_BATCH') ?? 256);
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new ReefError(`maxBatch (REEF_MAX_BATCH) must be a positive integer, got ${maxBatch}`);
    const limitCaps = (caps: Caps): Caps => ({
      ...caps,
      maxWorkgroupsPerDimension: Math.min(caps.maxWorkgroupsPerDimension, options.maxWorkgroupsPerDimension ?? Infinity),
      maxStorageBufferBindingSize: Math.min(caps.maxStorageBufferBindingSize, options.maxStorageBufferBindingSize ?? Infinity),
    });
    if (options.device) {
      const d = options.device;
      const caps = readCaps(d.adapterInfo ?? {}, d.features as ReadonlySet<string>, d.limits, false, host.backend(d.features as ReadonlySet<string>));
      return new Runtime(host, d, limitCaps(caps), false, profile, maxBatch);
    }
    let adapter = options.adapter ?? null;
    if (!adapter) {
      const gpu = await host.gpu().catch((e: Error) => {
        throw new NoAdapterError(host.name, e.message);
      });
      adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' }).catch(() => null);
    }
    if (!adapter) throw new NoAdapterError(host.name);
    const adapterFeatures = adapter.features as ReadonlySet<string>;
    const requiredFeatures = WANTED_FEATURES.filter((f) => adapterFeatures.has(f)) as GPUFeatureName[];
    const requiredLimits: Record<string, number> = {};
    for (const name of RAISED_LIMITS) {
      const v = (adapter.limits as unknown as Record<string, number | undefined>)[name];
      if (typeof v === 'number') requiredLimits[name] = v;
    }
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'reef' });
    } catch {
      // Some implementations refuse a limit they advertise; the defaults still work.
      device = await adapter.requestDevice({ requiredFeatures, label: 'reef' });
    }
    const info = adapter.info ?? {};
    const caps = readCaps(info, adapterFeatures, device.limits, (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true, host.backend(adapterFeatures));
    return new Runtime(host, device, limitCaps(caps), true, profile, maxBatch);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Records one dispatch into the current batch. */
  dispatch(call: DispatchCall): void {
    this.checkUsable();
    const kernel = this.pipelines.get(call.kernel);
    const label = kernel.label;
    const entries: GPUBindGroupEntry[] = [];
    for (const b of kernel.buffers) {
      const given = call.buffers[b.name];
      if (!given) throw new ReefError(`kernel ${label}: buffer '${b.name}' (binding ${b.binding}) not bound`);
      const slice: BufferSlice = 'mapState' in given ? { buffer: given } : given; // a GPUBuffer, or a slice of one
      const size = slice.size ?? (slice.buffer.size - (slice.offset ?? 0));
      if (size > this.caps.maxStorageBufferBindingSize) {
        throw new ReefError(`kernel ${label}: '${b.name}' binds ${size} bytes, over the adapter's maxStorageBufferBindingSize ${this.caps.maxStorageBufferBindingSize}`);
      }
      entries.push({ binding: b.binding, resource: { buffer: slice.buffer, offset: slice.offset ?? 0, size } });
    }
    for (const name of Object.keys(call.buffers)) {
      if (!kernel.buffers.some((b) => b.name === name)) throw new ReefError(`kernel ${label}: it has no buffer binding '${name}'`);
    }
    if (kernel.params) {
      const bytes = packParams(kernel.params, call.params ?? {}, label);
      entries.push({ binding: kernel.params.binding, resource: { buffer: this.uniformFor(bytes) } });
    } else if (call.params && Object.keys(call.params).length) {
      throw new ReefError(`kernel ${label}: it takes no parameters`);
    }
    const [x, y = 1, z = 1] = call.workgroups;
    for (const n of [x, y, z]) {
      if (!Number.isInteger(n) || n < 0) throw new ReefError(`kernel ${label}: workgroup count ${n} is not a non-negative integer`);
    }
    const maxWg = this.caps.maxWorkgroupsPerDimension;
    if (x > maxWg || y > maxWg || z > maxWg) throw new ReefError(`kernel ${label}: dispatch ${x}×${y}×${z} exceeds ${maxWg} workgroups per dimension`);
    if (x === 0 || y === 0 || z === 0) return;

    const bindGroup = this.device.createBindGroup({ layout: kernel.layout, entries, label });
    if (this.profiler?.full) this.flush();
    const pass = this.beginPass(label, call.work ?? {});
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.profiler) this.endPass();
    this.batchLabels.push(label);
    if (this.batchLabels.length >= this.maxBatch) this.flush();
  }

  /**
   * Writes host data into a buffer. `fresh` buffers (just taken from the pool) cannot be in use by
   * recorded commands; any other buffer may be, so recorded commands are submitted first to keep order.
   */
  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0, fresh = false): void {
    this.checkUsable();
    if (!fresh) this.flush();
    const bytes = data.byteLength;
    if (bytes % 4 === 0) {
      this.device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, bytes);
    } else {
      const padded = new Uint8Array(Math.ceil(bytes / 4) * 4);
      padded.set(new Uint8Array(data.buffer, data.byteOffset, bytes));
      this.device.queue.writeBuffer(buffer, offset, padded);
    }
  }

  /** Copies between buffers inside the current batch (ordered with the dispatches around it). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.checkUsable();
    this.endPass();
    this.encoderNow().copyBufferToBuffer(src, srcOffset, dst, dstOffset, Math.ceil(bytes / 4) * 4);
    this.batchLabels.push('copy');
  }

  /** Reads `bytes` from a buffer: submits what is recorded, waits for it, and checks for errors. */
  async read(buffer: GPUBuffer, offset: number, bytes: number): Promise<ArrayBuffer> {
    this.checkUsable();
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.takeStaging(size);
    this.endPass();
    this.encoderNow().copyBufferToBuffer(buffer, offset, staging, 0, size);
    this.batchLabels.push('readback');
    this.flush();
    try {
      await this.host.waitForGpu(staging.mapAsync(MapMode.READ, 0, size));
    } catch (e) {
      this.checkUsable();
      throw new ReefError(`readback failed: ${(e as Error).message}`, { cause: e });
    }
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    this.giveStaging(staging);
    await this.checkErrors();
    return out;
  }

  /** Submits the recorded batch. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    const encoder = this.encoder;
    this.encoder = null;
    const afterSubmit = this.profiler?.beforeSubmit(encoder) ?? null;
    const labels = this.batchLabels;
    this.batchLabels = [];
    this.device.pushErrorScope('validation');
    this.device.queue.submit([encoder.finish()]);
    this.pendingScopes.push(
      this.device.popErrorScope().then((err) => {
        if (err) this.fail(new GpuValidationError(labels, err.message));
      }),
    );
    this.lastSubmitted = labels.slice(-8);
    afterSubmit?.();
    this.pool.afterSubmit();
    for (const u of this.retiredUniforms) u.destroy();
    this.retiredUniforms = [];
  }

  /** Submits, waits until the GPU is idle, and throws any error found on the way. */
  async sync(): Promise<void> {
    this.checkUsable();
    this.flush();
    await this.host.waitForGpu(this.device.queue.onSubmittedWorkDone());
    await this.checkErrors();
  }

  /** Throws the first asynchronous error (validation, out of memory, device lost) seen so far. */
  async checkErrors(): Promise<void> {
    const scopes = this.pendingScopes;
    this.pendingScopes = [];
    await Promise.all(scopes);
    if (this.lost) throw this.lost;
    const e = this.pendingError;
    if (e) {
      this.pendingError = null;
      throw e;
    }
  }

  memory(): MemoryStats {
    return this.pool.memory();
  }

  /** Per-kernel profile (empty unless profiling is on). */
  async profile(): Promise<KernelProfile[]> {
    if (!this.profiler) return [];
    this.flush();
    return this.profiler.report();
  }

  async profileTable(): Promise<string> {
    if (!this.profiler) return 'profiling is off (set REEF_PROFILE=1 or pass --profile)';
    return formatProfile(await this.profile(), this.profiler.timed);
  }

  /** Releases every GPU resource reef holds; the device too when reef created it. */
  dispose(): void {
    if (this.disposed) return;
    if (!this.lost) {
      try {
        this.flush();
      } catch {
        /* nothing left to save */
      }
    }
    this.disposed = true;
    this.device.removeEventListener?.('uncapturederror', this.onUncaptured);
    this.pool.trim();
    for (const u of this.uniforms.values()) u.destroy();
    this.uniforms.clear();
    for (const list of this.staging.values()) for (const b of list) b.destroy();
    this.staging.clear();
    this.dummy.destroy();
    this.profiler?.dispose();
    if (this.ownsDevice) this.device.destroy();
  }

  describe(): string {
    const c = this.caps;
    const feats = [c.f16 && 'shader-f16', c.subgroups && 'subgroups', c.timestamps && 'timestamp-query'].filter(Boolean).join(', ');
    return `${c.description || c.device || c.vendor} [${c.isCpu ? 'CPU adapter' : 'GPU'}; host ${this.host.name}, ${c.backend}; ${feats || 'no optional features'}]`;
  }

  private checkUsable(): void {
    if (this.disposed) throw new ReefError('this reef runtime has been disposed');
    if (this.lost) throw this.lost;
  }

  private fail(e: Error): void {
    this.pendingError ??= e;
  }

  private encoderNow(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'reef-batch' });
    return this.encoder;
  }

  private beginPass(label: string, work: Work): GPUComputePassEncoder {
    if (this.pass) return this.pass;
    const timestampWrites = this.profiler?.next(label, work);
    this.pass = this.encoderNow().beginComputePass(timestampWrites ? { timestampWrites, label } : { label: 'reef-pass' });
    return this.pass;
  }

  private endPass(): void {
    if (!this.pass) return;
    this.pass.end();
    this.pass = null;
  }

  /** Uniform buffers are immutable and shared by content, so the same shapes reuse them every step. */
  private uniformFor(bytes: Uint8Array): GPUBuffer {
    const key = Array.from(new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)).join(',');
    const hit = this.uniforms.get(key);
    if (hit) {
      this.uniforms.delete(key); // refresh its place in the LRU order
      this.uniforms.set(key, hit);
      return hit;
    }
    const buf = this.device.createBuffer({ size: bytes.byteLength, usage: BufferUsage.UNIFORM, mappedAtCreation: true, label: 'reef-params' });
    new Uint8Array(buf.getMappedRange()).set(bytes);
    buf.unmap();
    this.uniforms.set(key, buf);
    if (this.uniforms.size > UNIFORM_CACHE_MAX) {
      // Evicted buffers may be bound by recorded commands: destroy them after the next submit.
      for (const [k, b] of this.uniforms) {
        if (this.uniforms.size <= UNIFORM_CACHE_MAX * 0.75) break;
        this.uniforms.delete(k);
        this.retiredUniforms.push(b);
      }
    }
    return buf;
  }

  private takeStaging(size: number): GPUBuffer {
    const bucket = 2 ** Math.ceil(Math.log2(Math.max(size, 256)));
    return this.staging.get(bucket)?.pop() ?? this.device.createBuffer({ size: bucket, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'reef-readback' });
  }

  private giveStaging(buf: GPUBuffer): void {
    let list = this.staging.get(buf.size);
    if (!list) this.staging.set(buf.size, (list = []));
    if (list.length < 4) list.push(buf);
    else buf.destroy();
  }
}

export { kernelLabel };
export type { Work, KernelProfile, MemoryStats };
