/**
 * The size-bucketed buffer pool (src/gpu/buffer-pool.ts).
 *
 * Most checks run the pool on a fake device (plain objects standing in for GPUBuffers), so the
 * bookkeeping is exact and independent of whatever else the shared runtime holds. The last block
 * checks the one property that only a real queue can show: a buffer released while commands that
 * read it are still being recorded must not be handed out (and written) before they are submitted.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BufferPool, bucketSize, STORAGE_USAGE } from '../../src/gpu/buffer-pool';
import { GpuOutOfMemoryError } from '../../src/gpu/errors';
import type { Runtime } from '../../src/gpu/runtime';
import { empty, tensor } from '../../src/tensor/create';
import { scale } from '../../src/ops/pointwise';
import { testRuntime } from '../support/runtime';

interface FakeBuffer {
  size: number;
  usage: number;
  label: string;
  destroyed: boolean;
  destroy(): void;
}

function fakeDevice(oomOnCreate = false) {
  const created: FakeBuffer[] = [];
  let scopes = 0;
  const device = {
    createBuffer(d: GPUBufferDescriptor): FakeBuffer {
      const b: FakeBuffer = {
        size: d.size,
        usage: d.usage,
        label: d.label ?? '',
        destroyed: false,
        destroy() {
          this.destroyed = true;
        },
      };
      created.push(b);
      return b;
    },
    pushErrorScope() {
      scopes++;
    },
    popErrorScope() {
      scopes--;
      return Promise.resolve(oomOnCreate ? ({ message: 'fake out of memory' } as GPUError) : null);
    },
  };
  return { device: device as unknown as GPUDevice, created, openScopes: () => scopes };
}

function makePool(opts: { maxBufferSize?: number; maxBindingSize?: number; oom?: boolean; parkLimit?: number } = {}) {
  const fake = fakeDevice(opts.oom);
  let recording = false;
  const errors: Error[] = [];
  const submits: number[] = [];
  // The runtime's submit: the pool is told afterwards, as Runtime.flush() does.
  const submit = () => {
    submits.push(pool.memory().allocated);
    recording = false;
    pool.afterSubmit();
  };
  const pool: BufferPool = new BufferPool(fake.device, opts.maxBufferSize ?? 2 ** 32, opts.maxBindingSize ?? 2 ** 32, () => recording, (e: Error) => errors.push(e), undefined, opts.parkLimit, submit);
  return {
    pool,
    ...fake,
    errors,
    submits,
    setRecording(v: boolean) {
      recording = v;
    },
  };
}

const asFake = (b: GPUBuffer) => b as unknown as FakeBuffer;

describe('bucketSize', () => {
  it('rounds small sizes up to 256-byte steps (minimum one step)', () => {
    expect(bucketSize(0)).toBe(256);
    expect(bucketSize(1)).toBe(256);
    expect(bucketSize(4)).toBe(256);
    expect(bucketSize(256)).toBe(256);
    expect(bucketSize(257)).toBe(512);
    expect(bucketSize(1000)).toBe(1024);
    expect(bucketSize(4095)).toBe(4096);
    expect(bucketSize(4096)).toBe(4096);
  });

  it('uses 8 buckets per power of two above 4 KiB', () => {
    expect(bucketSize(4097)).toBe(4608); // 4096 + 4096/8
    expect(bucketSize(4608)).toBe(4608);
    expect(bucketSize(4609)).toBe(5120);
    expect(bucketSize(8191)).toBe(8192);
    expect(bucketSize(8192)).toBe(8192);
    expect(bucketSize(8193)).toBe(9216);
    expect(bucketSize(2 ** 20 + 1)).toBe(2 ** 20 + 2 ** 17);
    expect(bucketSize(3 * 2 ** 30)).toBe(3 * 2 ** 30);
    expect(bucketSize(2 ** 31 + 1)).toBe(2 ** 31 + 2 ** 28);
    // distinct buckets in one octave
    const inOctave = new Set<number>();
    for (let n = 2 ** 16 + 1; n <= 2 ** 17; n += 97) inOctave.add(bucketSize(n));
    expect(inOctave.size).toBe(8);
  });

  it('never wastes more than 12.5 % above 4 KiB or 255 bytes below; is monotonic and idempotent', () => {
    const sizes: number[] = [];
    for (let n = 0; n <= 20_000; n++) sizes.push(n);
    for (let k = 14; k < 32; k++) {
      const p = 2 ** k;
      sizes.push(p - 1, p, p + 1, p + p / 8 - 1, p + p / 8, p + p / 8 + 1, Math.floor(p * 1.7) + 3);
    }
    const bad: string[] = [];
    let prevN = -1;
    let prevB = 0;
    for (const n of sizes) {
      const b = bucketSize(n);
      if (b < Math.max(n, 4)) bad.push(`${n} -> ${b}: too small`);
      if (b % 256 !== 0) bad.push(`${n} -> ${b}: not a multiple of 256`);
      if (n <= 4096 && b - Math.max(n, 1) >= 256) bad.push(`${n} -> ${b}: 256 B or more wasted`);
      if (n > 4096 && (b - n) / n > 0.125) bad.push(`${n} -> ${b}: more than 12.5 % wasted`);
      if (bucketSize(b) !== b) bad.push(`${n} -> ${b}: bucket of a bucket differs`);
      if (n > prevN && b < prevB) bad.push(`${n} -> ${b}: smaller than the bucket of ${prevN}`);
      prevN = n;
      prevB = b;
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });
});

describe('BufferPool on a fake device', () => {
  it('creates storage buffers of the bucket size and counts them', () => {
    const { pool, created } = makePool();
    const b = pool.acquire(1000, 'first');
    expect(created).toHaveLength(1);
    expect(asFake(b).size).toBe(1024);
    expect(asFake(b).usage).toBe(STORAGE_USAGE);
    expect(asFake(b).label).toBe('first');
    expect(pool.memory()).toEqual({ inUse: 1024, peak: 1024, pooled: 0, allocated: 1024, buffersCreated: 1, reuses: 0 });
  });

  it('reuses a released buffer of the same bucket instead of creating one', () => {
    const { pool, created } = makePool();
    const a = pool.acquire(1000, 'a');
    pool.release(a);
    expect(pool.memory()).toMatchObject({ inUse: 0, pooled: 1024, allocated: 1024 });
    const b = pool.acquire(900, 'b'); // same 1024-byte bucket
    expect(b).toBe(a);
    const m = pool.memory();
    expect(m.reuses).toBe(1);
    expect(m.buffersCreated).toBe(1);
    expect(m.pooled).toBe(0);
    expect(m.inUse).toBe(1024);
    expect(created).toHaveLength(1);
  });

  it('does not hand a buffer of another bucket out', () => {
    const { pool } = makePool();
    const a = pool.acquire(1024, 'a');
    pool.release(a);
    const b = pool.acquire(1025, 'b'); // 1280-byte bucket
    expect(b).not.toBe(a);
    expect(pool.memory()).toMatchObject({ buffersCreated: 2, reuses: 0, pooled: 1024, inUse: 1280, allocated: 2304 });
  });

  it('keeps inUse, peak, pooled and allocated consistent; resetPeak lowers peak to inUse', () => {
    const { pool } = makePool();
    const a = pool.acquire(256, 'a');
    const b = pool.acquire(5000, 'b'); // 5120
    const c = pool.acquire(300, 'c'); // 512
    expect(pool.memory()).toMatchObject({ inUse: 256 + 5120 + 512, peak: 5888, allocated: 5888, pooled: 0 });
    pool.release(b);
    expect(pool.memory()).toMatchObject({ inUse: 768, peak: 5888, pooled: 5120, allocated: 5888 });
    pool.resetPeak();
    expect(pool.memory().peak).toBe(768);
    pool.release(a);
    pool.release(c);
    expect(pool.memory()).toMatchObject({ inUse: 0, peak: 768, pooled: 5888, allocated: 5888 });
    const d = pool.acquire(5000, 'd');
    expect(d).toBe(b);
    expect(pool.memory()).toMatchObject({ inUse: 5120, peak: 5120, pooled: 768 });
    // invariant: allocated = inUse + pooled when nothing is parked
    const m = pool.memory();
    expect(m.allocated).toBe(m.inUse + m.pooled);
  });

  it('trim() destroys pooled buffers only and updates the counts', () => {
    const { pool } = makePool();
    const live = pool.acquire(1000, 'live');
    const x = pool.acquire(1000, 'x');
    const y = pool.acquire(9000, 'y');
    pool.release(x);
    pool.release(y);
    pool.trim();
    expect(asFake(x).destroyed).toBe(true);
    expect(asFake(y).destroyed).toBe(true);
    expect(asFake(live).destroyed).toBe(false);
    expect(pool.memory()).toMatchObject({ pooled: 0, allocated: 1024, inUse: 1024 });
    // a trimmed buffer is never handed out again
    const z = pool.acquire(1000, 'z');
    expect(z).not.toBe(x);
    expect(asFake(z).destroyed).toBe(false);
  });

  it('parks a buffer released while recording until afterSubmit()', () => {
    const { pool, setRecording } = makePool();
    const a = pool.acquire(2048, 'a');
    setRecording(true);
    pool.release(a);
    // not in the free list yet: the recorded commands may still read it
    expect(pool.memory()).toMatchObject({ inUse: 0, pooled: 0, allocated: 2048 });
    const b = pool.acquire(2048, 'b');
    expect(b).not.toBe(a);
    expect(pool.memory().reuses).toBe(0);
    setRecording(false);
    pool.afterSubmit();
    expect(pool.memory().pooled).toBe(2048);
    const c = pool.acquire(2048, 'c');
    expect(c).toBe(a);
    expect(pool.memory().reuses).toBe(1);
  });

  it('asks for a submit once parked bytes pass the limit, so a same-sized request reuses them', () => {
    const { pool, setRecording, submits, created } = makePool({ parkLimit: 3 * 4096 });
    // A loop that makes a temporary, records a kernel on it, and frees it.
    for (let i = 0; i < 10; i++) {
      const b = pool.acquire(4096, `tmp${i}`);
      setRecording(true);
      pool.release(b);
    }
    // Submits after every 4th release (4 × 4096 > 3 × 4096): at most 4 buffers ever exist.
    expect(submits.length).toBe(2);
    expect(created.length).toBeLessThanOrEqual(4);
    expect(pool.memory().inUse).toBe(0);
    // Without a limit the same loop makes a buffer per iteration.
    const unlimited = makePool();
    for (let i = 0; i < 10; i++) {
      const b = unlimited.pool.acquire(4096, `tmp${i}`);
      unlimited.setRecording(true);
      unlimited.pool.release(b);
    }
    expect(unlimited.created.length).toBe(10);
    expect(unlimited.submits.length).toBe(0);
  });

  it('trim() leaves parked buffers alone; they become reusable after submit', () => {
    const { pool, setRecording } = makePool();
    const a = pool.acquire(512, 'a');
    setRecording(true);
    pool.release(a);
    pool.trim();
    expect(asFake(a).destroyed).toBe(false);
    setRecording(false);
    pool.afterSubmit();
    expect(pool.acquire(512, 'b')).toBe(a);
  });

  it('rejects a buffer it did not create', () => {
    const { pool } = makePool();
    const other = fakeDevice().device.createBuffer({ size: 256, usage: STORAGE_USAGE });
    expect(() => pool.release(other)).toThrow(/does not belong to this pool/);
  });

  it('throws GpuOutOfMemoryError for a bucket above maxBufferSize, without creating anything', () => {
    const { pool, created } = makePool({ maxBufferSize: 65536 });
    expect(() => pool.acquire(65537, 'huge activations')).toThrow(GpuOutOfMemoryError);
    expect(() => pool.acquire(65537, 'huge activations')).toThrow(/huge activations.*maxBufferSize 65536/);
    expect(created).toHaveLength(0);
    expect(pool.memory().inUse).toBe(0);
    expect(() => pool.acquire(65536, 'fits')).not.toThrow();
  });

  it('reports an out-of-memory error scope asynchronously, naming what was allocated', async () => {
    const { pool, errors, openScopes } = makePool({ oom: true });
    pool.acquire(4096, 'attention scores');
    expect(openScopes()).toBe(0); // push and pop are paired
    await Promise.resolve();
    await Promise.resolve();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(GpuOutOfMemoryError);
    expect(errors[0]!.message).toMatch(/attention scores/);
    expect(errors[0]!.message).toMatch(/4\.0 KiB/);
  });
});

describe('BufferPool inside the runtime', () => {
  let rt: Runtime;
  beforeAll(async () => {
    rt = await testRuntime();
  });

  it('returns a tensor buffer to the pool and reuses it for the next tensor of that bucket', async () => {
    await rt.sync(); // nothing recorded: releases go straight to the free list
    const a = empty(rt, [3000]); // 12000 B -> 12288 bucket
    const buf = a.buffer;
    const m0 = rt.memory();
    a.dispose();
    const m1 = rt.memory();
    expect(m1.inUse).toBe(m0.inUse - bucketSize(12000));
    expect(m1.pooled).toBe(m0.pooled + bucketSize(12000));
    const b = empty(rt, [2900]); // 11600 B, same bucket
    const m2 = rt.memory();
    expect(b.buffer).toBe(buf);
    expect(m2.reuses).toBe(m1.reuses + 1);
    expect(m2.buffersCreated).toBe(m1.buffersCreated);
    b.dispose();
  });

  it('does not hand out a buffer read by recorded commands before they are submitted', async () => {
    const n = 4000; // a bucket no other test here uses
    await rt.sync();
    const x = tensor(rt, new Float32Array(n).fill(1), [n]);
    await rt.sync();
    const y = scale(x, 2); // recorded, not submitted: reads x
    const xBuf = x.buffer;
    x.dispose();
    // Same size: if x's buffer came back now, this upload (queue.writeBuffer) would run before the
    // recorded scale and y would be 200.
    const z = tensor(rt, new Float32Array(n).fill(100), [n]);
    expect(z.buffer).not.toBe(xBuf);
    const yv = await y.read();
    expect(yv.every((v) => v === 2)).toBe(true);
    const zv = await z.read();
    expect(zv.every((v) => v === 100)).toBe(true);
    // once submitted, the parked buffer is reusable again
    const w = empty(rt, [n]);
    expect(w.buffer).toBe(xBuf);
    for (const t of [y, z, w]) t.dispose();
  });
});
