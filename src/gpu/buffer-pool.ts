/**
 * Size-bucketed pool of storage buffers.
 *
 * Sizes are rounded up to a bucket (256 B granularity below 4 KiB, then 8 buckets per power of two,
 * so at most 12.5 % is wasted). Released buffers go to a free list per bucket. A buffer released while
 * commands that use it are still being recorded is parked until those commands are submitted, because
 * a later `queue.writeBuffer` into a reused buffer would otherwise run before them.
 */
import { GpuOutOfMemoryError } from './errors.js';
import { BufferUsage } from './flags.js';

export const STORAGE_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;

export interface MemoryStats {
  /** Bytes held by live tensors (bucket sizes). */
  inUse: number;
  /** Highest `inUse` since creation or the last `resetPeak()`. */
  peak: number;
  /** Bytes kept in free lists for reuse. */
  pooled: number;
  /** Bytes of all buffers reef created and has not destroyed. */
  allocated: number;
  buffersCreated: number;
  reuses: number;
}

export function bucketSize(bytes: number): number {
  const n = Math.max(bytes, 4);
  if (n <= 4096) return Math.ceil(n / 256) * 256;
  const pow = 2 ** Math.floor(Math.log2(n));
  const step = pow / 8;
  return Math.ceil(n / step) * step;
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private parked: GPUBuffer[] = [];
  private readonly sizeOf = new WeakMap<GPUBuffer, number>();
  /** Buffers currently free or parked: releasing one of them again is a bug upstream. */
  private readonly idle = new WeakSet<GPUBuffer>();
  private stats: MemoryStats = { inUse: 0, peak: 0, pooled: 0, allocated: 0, buffersCreated: 0, reuses: 0 };

  constructor(
    private readonly device: GPUDevice,
    private readonly maxBufferSize: number,
    /** The largest storage binding: a tensor within it must get a buffer within it. */
    private readonly maxBindingSize: number,
    /** Tells whether commands are being recorded that may still use a released buffer. */
    private readonly recording: () => boolean,
    /** Called with an error found asynchronously (out-of-memory on creation). */
    private readonly onAsyncError: (e: Error) => void,
    /** Hands the runtime each pending error check, so `checkErrors()` waits for it. */
    private readonly track: (check: Promise<void>) => void = () => undefined,
    /**
     * Parked bytes past which the pool asks for the recorded commands to be submitted: until then a
     * parked buffer cannot be reused, and a same-sized request makes a new one (in a big model's
     * step that doubled the memory reef held).
     */
    private readonly parkLimit = Infinity,
    private readonly submitRecorded: () => void = () => undefined,
  ) {}

  private parkedBytes = 0;

  private readonly owners = new Map<GPUBuffer, string>();

  acquire(bytes: number, what: string): GPUBuffer {
    let size = bucketSize(bytes);
    // A bucket may overshoot a limit the request itself is within: then take the exact size.
    const exact = Math.ceil(Math.max(bytes, 4) / 4) * 4;
    if ((size > this.maxBufferSize || size > this.maxBindingSize) && exact <= Math.min(this.maxBufferSize, this.maxBindingSize)) size = exact;
    if (size > this.maxBufferSize) {
      throw new GpuOutOfMemoryError(`${what} (larger than the adapter's maxBufferSize ${this.maxBufferSize})`, size, this.stats.inUse, this.stats.peak);
    }
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (buffer) {
      this.idle.delete(buffer);
      this.stats.pooled -= size;
      this.stats.reuses++;
    } else {
      buffer = this.create(size, what);
    }
    this.stats.inUse += size;
    if (this.stats.inUse > this.stats.peak) this.stats.peak = this.stats.inUse;
    this.owners.set(buffer, what);
    return buffer;
  }

  /** Live buffers by what they were acquired for: finds what a loop fails to free. */
  liveByOwner(): Map<string, { count: number; bytes: number }> {
    const out = new Map<string, { count: number; bytes: number }>();
    for (const [buffer, what] of this.owners) {
      const e = out.get(what) ?? { count: 0, bytes: 0 };
      e.count++;
      e.bytes += this.sizeOf.get(buffer) ?? 0;
      out.set(what, e);
    }
    return out;
  }

  release(buffer: GPUBuffer): void {
    this.owners.delete(buffer);
    const size = this.sizeOf.get(buffer);
    if (size === undefined) throw new Error('BufferPool.release: buffer does not belong to this pool');
    if (this.idle.has(buffer)) throw new Error(`BufferPool.release: buffer '${buffer.label}' released twice`);
    this.idle.add(buffer);
    this.stats.inUse -= size;
    if (this.recording()) {
      this.parked.push(buffer);
      this.parkedBytes += size;
      if (this.parkedBytes > this.parkLimit) this.submitRecorded();
    } else this.toFreeList(buffer, size);
  }

  /** Called once recorded commands have been submitted: parked buffers become reusable. */
  afterSubmit(): void {
    const parked = this.parked;
    this.parked = [];
    this.parkedBytes = 0;
    for (const b of parked) this.toFreeList(b, this.sizeOf.get(b)!);
  }

  /** Destroys every pooled (free) buffer. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.stats.allocated -= this.sizeOf.get(b)!;
        b.destroy();
      }
    }
    this.free.clear();
    this.stats.pooled = 0;
  }

  memory(): MemoryStats {
    return { ...this.stats };
  }

  resetPeak(): void {
    this.stats.peak = this.stats.inUse;
  }

  private toFreeList(buffer: GPUBuffer, size: number): void {
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buffer);
    this.stats.pooled += size;
  }

  private create(size: number, what: string): GPUBuffer {
    this.device.pushErrorScope('out-of-memory');
    const buffer = this.device.createBuffer({ size, usage: STORAGE_USAGE, label: what });
    const inUse = this.stats.inUse;
    const peak = this.stats.peak;
    this.track(
      this.device.popErrorScope().then((err) => {
        if (err) this.onAsyncError(new GpuOutOfMemoryError(what, size, inUse, peak));
      }),
    );
    this.sizeOf.set(buffer, size);
    this.stats.allocated += size;
    this.stats.buffersCreated++;
    return buffer;
  }
}
