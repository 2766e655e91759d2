/**
 * Per-kernel GPU timing with timestamp queries.
 *
 * When profiling, every dispatch gets its own compute pass whose begin/end timestamps land in a
 * query set; at each submit the used slots are resolved and read back asynchronously, and the
 * durations are added to a per-kernel table. Ops declare their work (FLOPs, bytes moved), so the
 * table shows achieved GFLOP/s and GB/s next to the time.
 */
import { BufferUsage, MapMode } from './flags.js';

export interface Work {
  flops?: number;
  bytes?: number;
}

export interface KernelProfile {
  kernel: string;
  calls: number;
  /** Total GPU time in ms, or null where the adapter has no timestamp queries. */
  totalMs: number | null;
  meanUs: number | null;
  gflops: number | null;
  gbps: number | null;
}

interface Stat {
  calls: number;
  ns: number;
  flops: number;
  bytes: number;
}

const SLOTS = 512; // dispatches per query set before a forced submit

export class Profiler {
  readonly timed: boolean;
  private querySet: GPUQuerySet | null = null;
  private resolveBuf: GPUBuffer | null = null;
  private readonly readBufs: GPUBuffer[] = [];
  private batch: { label: string; work: Work }[] = [];
  private readonly stats = new Map<string, Stat>();
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly device: GPUDevice,
    hasTimestamps: boolean,
    private readonly waitForGpu: <T>(p: Promise<T>) => Promise<T>,
  ) {
    this.timed = hasTimestamps;
    if (hasTimestamps) {
      this.querySet = device.createQuerySet({ type: 'timestamp', count: 2 * SLOTS, label: 'reef-profiler' });
      this.resolveBuf = device.createBuffer({ size: 16 * SLOTS, usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC, label: 'reef-profiler-resolve' });
    }
  }

  /** True when the current query set is full and the batch must be submitted first. */
  get full(): boolean {
    return this.batch.length >= SLOTS;
  }

  /** Timestamp writes for the next dispatch's pass, recording its label and work. */
  next(label: string, work: Work): GPUComputePassTimestampWrites | undefined {
    const slot = this.batch.length;
    this.batch.push({ label, work });
    if (!this.querySet) {
      this.add(label, work, 0);
      return undefined;
    }
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * slot, endOfPassWriteIndex: 2 * slot + 1 };
  }

  /** Called with the encoder just before it is finished: resolves this batch's timestamps. */
  beforeSubmit(encoder: GPUCommandEncoder): (() => void) | null {
    const batch = this.batch;
    this.batch = [];
    if (!this.querySet || !this.resolveBuf || batch.length === 0) return null;
    const bytes = 16 * batch.length;
    encoder.resolveQuerySet(this.querySet, 0, 2 * batch.length, this.resolveBuf, 0);
    const read = this.readBufs.pop() ?? this.device.createBuffer({ size: 16 * SLOTS, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'reef-profiler-read' });
    encoder.copyBufferToBuffer(this.resolveBuf, 0, read, 0, bytes);
    return () => {
      const p = this.waitForGpu(read.mapAsync(MapMode.READ, 0, bytes)).then(() => {
        const t = new BigInt64Array(read.getMappedRange(0, bytes).slice(0));
        read.unmap();
        this.readBufs.push(read);
        batch.forEach((rec, i) => this.add(rec.label, rec.work, Math.max(0, Number(t[2 * i + 1]! - t[2 * i]!))));
      }, () => undefined);
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
    };
  }

  /** Waits for outstanding timestamp readbacks, then returns the per-kernel table (slowest first). */
  async report(): Promise<KernelProfile[]> {
    while (this.pending.size) await Promise.all([...this.pending]);
    const rows: KernelProfile[] = [];
    for (const [kernel, s] of this.stats) {
      const timed = this.timed && s.ns > 0;
      const sec = s.ns / 1e9;
      rows.push({
        kernel,
        calls: s.calls,
        totalMs: this.timed ? s.ns / 1e6 : null,
        meanUs: this.timed ? s.ns / 1e3 / s.calls : null,
        gflops: timed && s.flops > 0 ? s.flops / sec / 1e9 : null,
        gbps: timed && s.bytes > 0 ? s.bytes / sec / 1e9 : null,
      });
    }
    return rows.sort((a, b) => (b.totalMs ?? 0) - (a.totalMs ?? 0) || b.calls - a.calls);
  }

  /** Frees the query set and readback buffers. */
  dispose(): void {
    this.querySet?.destroy();
    this.resolveBuf?.destroy();
    for (const b of this.readBufs) b.destroy();
    this.readBufs.length = 0;
  }

  /** Clears the table once the timestamps of work already submitted have been counted. */
  async reset(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
    this.stats.clear();
  }

  private add(label: string, work: Work, ns: number): void {
    let s = this.stats.get(label);
    if (!s) this.stats.set(label, (s = { calls: 0, ns: 0, flops: 0, bytes: 0 }));
    s.calls++;
    s.ns += ns;
    s.flops += work.flops ?? 0;
    s.bytes += work.bytes ?? 0;
  }
}

/** Formats a profile as a fixed-width text table. */
export function formatProfile(rows: KernelProfile[], timed: boolean): string {
  const head = ['kernel', 'calls', 'total ms', 'mean µs', 'GFLOP/s', 'GB/s'];
  const fmt = (x: number | null, d: number) => (x === null ? '-' : x.toFixed(d));
  const body = rows.map((r) => [r.kernel, String(r.calls), fmt(r.totalMs, 3), fmt(r.meanUs, 1), fmt(r.gflops, 1), fmt(r.gbps, 2)]);
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const total = rows.reduce((s, r) => s + (r.totalMs ?? 0), 0);
  const note = timed ? `GPU time from timestamp queries; total ${total.toFixed(3)} ms` : 'this adapter has no timestamp queries: calls only';
  return [line(head), ...body.map(line), note].join('\n');
}
