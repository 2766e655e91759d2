/**
 * The Node host (src/host/node.ts, index.ts): detection, environment, and the back-off polling that
 * swaps `globalThis.setImmediate` while reef waits for the GPU — it must always be put back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { detectHost } from '../../src/host/index';
import { nodeHost } from '../../src/host/node';
import { webHost } from '../../src/host/web';

/** A promise with its resolve/reject, to control exactly when a wait ends. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** nodeHost() with polling back-off on, whatever REEF_POLL_BACKOFF the suite runs under. */
function backoffHost() {
  const saved = process.env.REEF_POLL_BACKOFF;
  delete process.env.REEF_POLL_BACKOFF;
  try {
    return nodeHost();
  } finally {
    if (saved !== undefined) process.env.REEF_POLL_BACKOFF = saved;
  }
}

const original = globalThis.setImmediate;

afterEach(() => {
  // never leave the process with a swapped setImmediate, even when a test fails
  globalThis.setImmediate = original;
});

describe('detectHost', () => {
  it('returns the node host under Node', async () => {
    const host = await detectHost();
    expect(host.name).toBe('node');
    expect(typeof host.gpu).toBe('function');
    expect(typeof host.waitForGpu).toBe('function');
  });

  it('the web host (browser/Deno) has no env and no WebGPU under Node', async () => {
    const host = webHost();
    expect(host.name).toBe('browser');
    expect(host.env('PATH')).toBeUndefined();
    if (!(globalThis.navigator as Navigator | undefined)?.gpu) await expect(host.gpu()).rejects.toThrow(/navigator\.gpu is missing/);
  });
});

describe('node host env', () => {
  it('reads process.env at call time', () => {
    const host = nodeHost();
    const name = 'REEF_TEST_HOST_ENV_VALUE';
    delete process.env[name];
    try {
      expect(host.env(name)).toBeUndefined();
      process.env[name] = 'abc';
      expect(host.env(name)).toBe('abc');
      process.env[name] = '';
      expect(host.env(name)).toBe('');
    } finally {
      delete process.env[name];
    }
  });

  it('REEF_POLL_BACKOFF=0 turns the back-off off (waits leave setImmediate alone)', async () => {
    const saved = process.env.REEF_POLL_BACKOFF;
    process.env.REEF_POLL_BACKOFF = '0';
    let host;
    try {
      host = nodeHost();
    } finally {
      if (saved === undefined) delete process.env.REEF_POLL_BACKOFF;
      else process.env.REEF_POLL_BACKOFF = saved;
    }
    const d = deferred<number>();
    const w = host.waitForGpu(d.promise);
    expect(globalThis.setImmediate).toBe(original);
    d.resolve(3);
    expect(await w).toBe(3);
  });
});

describe('node host waitForGpu back-off', () => {
  it('swaps setImmediate during a wait and restores it after', async () => {
    const host = backoffHost();
    const d = deferred<string>();
    const w = host.waitForGpu(d.promise);
    expect(globalThis.setImmediate).not.toBe(original);
    d.resolve('done');
    expect(await w).toBe('done');
    expect(globalThis.setImmediate).toBe(original);
  });

  it('restores setImmediate after a rejected wait and passes the rejection on', async () => {
    const host = backoffHost();
    const d = deferred<string>();
    const w = host.waitForGpu(d.promise);
    expect(globalThis.setImmediate).not.toBe(original);
    d.reject(new Error('mapAsync failed'));
    await expect(w).rejects.toThrow('mapAsync failed');
    expect(globalThis.setImmediate).toBe(original);
  });

  it('with two overlapping waits, restores only when the last one ends (in either order)', async () => {
    const host = backoffHost();
    for (const firstEnds of [0, 1]) {
      const a = deferred<number>();
      const b = deferred<number>();
      const wa = host.waitForGpu(a.promise);
      const swapped = globalThis.setImmediate;
      expect(swapped).not.toBe(original);
      const wb = host.waitForGpu(b.promise);
      expect(globalThis.setImmediate).toBe(swapped);
      const [first, second] = firstEnds === 0 ? [a, b] : [b, a];
      const [wFirst, wSecond] = firstEnds === 0 ? [wa, wb] : [wb, wa];
      first.reject(new Error('first'));
      await expect(wFirst).rejects.toThrow('first');
      expect(globalThis.setImmediate).toBe(swapped); // the other wait is still running
      second.resolve(2);
      expect(await wSecond).toBe(2);
      expect(globalThis.setImmediate).toBe(original);
    }
  });

  it('the swapped setImmediate still runs callbacks, early (spin) and late (timer) in a wait', async () => {
    const host = backoffHost();
    const d = deferred<void>();
    const w = host.waitForGpu(d.promise);
    const ran: string[] = [];
    await new Promise<void>((r) => globalThis.setImmediate((tag: string) => (ran.push(tag), r()), 'early'));
    await sleep(10); // past the ~2 ms spin window: now it polls with setTimeout
    await new Promise<void>((r) => globalThis.setImmediate((tag: string) => (ran.push(tag), r()), 'late'));
    d.resolve();
    await w;
    expect(ran).toEqual(['early', 'late']);
  });

  it('restores the setImmediate that was installed when the wait began', async () => {
    // node.ts captures `realSetImmediate` once at module load and restores that one, so a
    // setImmediate installed later (fake timers, an APM hook) is silently replaced by Node's own.
    const host = backoffHost();
    const custom = ((fn: (...args: unknown[]) => void, ...args: unknown[]) => original(fn, ...args)) as unknown as typeof setImmediate;
    globalThis.setImmediate = custom;
    const d = deferred<number>();
    const w = host.waitForGpu(d.promise);
    d.resolve(1);
    await w;
    expect(globalThis.setImmediate === custom, 'setImmediate after the wait is not the one installed before it').toBe(true);
  });
});
