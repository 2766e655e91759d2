/**
 * Tensor memory and lifetime (src/tensor/tensor.ts): dispose returns bytes to the pool, storage is
 * shared by reshape and reference counted, `tidy` disposes what a scope does not return, `keep`
 * lets a tensor out of its scope.
 *
 * Memory is checked as `memory().inUse` differences, so tensors other test files keep alive in the
 * shared runtime do not matter.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { bucketSize } from '../../src/gpu/buffer-pool';
import type { Runtime } from '../../src/gpu/runtime';
import { empty, tensor } from '../../src/tensor/create';
import { full } from '../../src/tensor/fill';
import { keep, tidy, type Tensor } from '../../src/tensor/tensor';
import { scale } from '../../src/ops/pointwise';
import { add } from '../../src/ops/binary';
import { reshape } from '../../src/ops/shape';
import { testRuntime } from '../support/runtime';

let rt: Runtime;
beforeAll(async () => {
  rt = await testRuntime();
});

const inUse = () => rt.memory().inUse;

describe('dispose', () => {
  it('returns the bucket of the tensor to the pool', () => {
    const before = inUse();
    const t = empty(rt, [10, 100]); // 4000 B
    expect(inUse()).toBe(before + bucketSize(4000));
    expect(t.byteSize).toBe(4000);
    t.dispose();
    expect(inUse()).toBe(before);
    expect(t.isDisposed).toBe(true);
  });

  it('is safe to call twice (the pool is released once)', () => {
    const before = inUse();
    const a = empty(rt, [300]);
    const b = empty(rt, [300]);
    a.dispose();
    a.dispose();
    expect(inUse()).toBe(before + bucketSize(1200));
    b.dispose();
    expect(inUse()).toBe(before);
  });

  it('a disposed tensor cannot be read or used, with an error naming it', async () => {
    const t = tensor(rt, [1, 2, 3], [3], { name: 'weights' });
    t.dispose();
    await expect(t.read()).rejects.toThrow(/tensor 'weights' f32\[3\] was disposed/);
    expect(() => t.buffer).toThrow(/was disposed/);
    expect(() => scale(t, 2)).toThrow(/was disposed/);
    expect(() => t.share()).toThrow(/was disposed/);
  });

  it('checks shapes and data length at creation', () => {
    expect(() => tensor(rt, [1, 2, 3], [2, 2])).toThrow(/3 values given for shape \[2, 2\] \(4 elements\)/);
    expect(() => empty(rt, [2, -1])).toThrow(/non-negative integer/);
    expect(() => empty(rt, [1.5])).toThrow(/non-negative integer/);
  });
});

describe('shared storage', () => {
  it('reshape shares the buffer: disposing the original keeps the reshaped one readable', async () => {
    const before = inUse();
    const x = tensor(rt, [1, 2, 3, 4, 5, 6], [6]);
    const r = reshape(x, [2, -1]);
    expect(r.shape).toEqual([2, 3]);
    expect(r.buffer).toBe(x.buffer);
    expect(inUse()).toBe(before + bucketSize(24)); // one buffer, not two
    x.dispose();
    expect(inUse()).toBe(before + bucketSize(24));
    expect(r.storage.shared).toBe(false);
    expect(Array.from(await r.read())).toEqual([1, 2, 3, 4, 5, 6]);
    r.dispose();
    expect(inUse()).toBe(before);
  });

  it('share() keeps the data alive until every handle is disposed', async () => {
    const before = inUse();
    const x = tensor(rt, [7, 8], [2]);
    const s = x.share();
    expect(x.storage.shared).toBe(true);
    x.dispose();
    expect(inUse()).toBe(before + 256);
    expect(Array.from(await s.read())).toEqual([7, 8]);
    s.dispose();
    expect(inUse()).toBe(before);
    expect(() => s.storage).toThrow(/disposed/);
  });
});

describe('tidy and keep', () => {
  it('disposes intermediates and keeps the returned tensor', async () => {
    const before = inUse();
    const made: Tensor[] = [];
    const out = tidy(() => {
      const a = full(rt, [64], 2);
      const b = scale(a, 3);
      const c = add(a, b);
      made.push(a, b, c);
      return c;
    });
    expect(made[0]!.isDisposed).toBe(true);
    expect(made[1]!.isDisposed).toBe(true);
    expect(out.isDisposed).toBe(false);
    expect(inUse()).toBe(before + bucketSize(256));
    expect((await out.read())[0]).toBe(8);
    out.dispose();
    expect(inUse()).toBe(before);
  });

  it('keeps tensors returned in arrays and objects', () => {
    const before = inUse();
    const r = tidy(() => {
      const a = full(rt, [4], 1);
      const b = full(rt, [4], 2);
      full(rt, [4], 3);
      return { pair: [a, b], n: 1 };
    });
    const [a, b] = r.pair as Tensor[];
    expect(a!.isDisposed).toBe(false);
    expect(b!.isDisposed).toBe(false);
    expect(inUse()).toBe(before + 2 * 256);
    a!.dispose();
    b!.dispose();
  });

  it('does not dispose tensors made outside the scope', () => {
    const outside = full(rt, [4], 1);
    const r = tidy(() => scale(outside, 2));
    expect(outside.isDisposed).toBe(false);
    expect(r.isDisposed).toBe(false);
    const same = tidy(() => outside);
    expect(same).toBe(outside);
    expect(outside.isDisposed).toBe(false);
    outside.dispose();
    r.dispose();
  });

  it('nested scopes pass results up; the outer scope disposes what it does not return', () => {
    const before = inUse();
    let inner!: Tensor;
    let innerTemp!: Tensor;
    const out = tidy(() => {
      inner = tidy(() => {
        innerTemp = full(rt, [8], 1);
        return scale(innerTemp, 2);
      });
      expect(innerTemp.isDisposed).toBe(true);
      expect(inner.isDisposed).toBe(false);
      return scale(inner, 2);
    });
    expect(inner.isDisposed).toBe(true); // returned by the inner scope, not by the outer one
    expect(out.isDisposed).toBe(false);
    expect(inUse()).toBe(before + 256);
    out.dispose();
    expect(inUse()).toBe(before);
  });

  it('a result of a nested scope returned by both scopes survives', () => {
    const out = tidy(() => tidy(() => full(rt, [8], 1)));
    expect(out.isDisposed).toBe(false);
    out.dispose();
  });

  it('keep() lets a tensor out of every enclosing scope', async () => {
    const before = inUse();
    let kept!: Tensor;
    let dropped!: Tensor;
    tidy(() => {
      tidy(() => {
        kept = keep(full(rt, [8], 5));
        dropped = full(rt, [8], 6);
      });
    });
    expect(kept.isDisposed).toBe(false);
    expect(dropped.isDisposed).toBe(true);
    expect(inUse()).toBe(before + 256);
    expect((await kept.read())[0]).toBe(5);
    kept.dispose();
    expect(inUse()).toBe(before);
  });

  it('a tensor disposed inside the scope is not disposed again', () => {
    const before = inUse();
    tidy(() => {
      const a = full(rt, [8], 1);
      a.dispose();
      full(rt, [8], 2);
    });
    expect(inUse()).toBe(before);
  });

  it('disposes the tensors made inside when the function throws', () => {
    // tidy pops its scope in `finally` but only disposes on the normal path: an exception (a shape
    // error, an out-of-memory) leaks every tensor the scope made, and they belong to no scope any more.
    const before = inUse();
    let made!: Tensor;
    expect(() =>
      tidy(() => {
        made = full(rt, [64], 1);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    const leaked = !made.isDisposed;
    made.dispose();
    expect(leaked, 'a tensor made inside a throwing tidy() is still alive').toBe(false);
    expect(inUse()).toBe(before);
  });
});
