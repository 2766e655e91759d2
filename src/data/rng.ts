/**
 * The data pipeline's PRNG: xoshiro128** (32-bit words, so it is exact in JS integer arithmetic),
 * seeded through a splitmix32-style mixer. Its whole state is four uint32s: `state()` goes into a
 * checkpoint and `Rng.fromState` resumes the stream bit for bit. `Rng.fromKeys(seed, epoch, index)`
 * derives an independent stream per sample, so a loader can be resumed from (seed, position) alone.
 *
 * tensor/create.ts's makeRng (mulberry32) keeps its state in a closure, which can't be saved.
 */
import { DataError } from './errors.js';

export interface RngState {
  readonly algorithm: 'xoshiro128**';
  /** Four uint32 words, never all zero. */
  readonly s: readonly [number, number, number, number];
  /** A pending second normal from Box–Muller, if any. */
  readonly spare?: number;
}

const ALGORITHM = 'xoshiro128**';

/** One mixing round (a 32-bit finaliser in the style of splitmix/murmur3). */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  return (x ^ (x >>> 15)) >>> 0;
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  /** The second Box–Muller value, kept so normals come in pairs; part of the state. */
  private spare: number | null = null;

  private constructor(s: readonly number[]) {
    this.s0 = s[0]! >>> 0;
    this.s1 = s[1]! >>> 0;
    this.s2 = s[2]! >>> 0;
    this.s3 = s[3]! >>> 0;
  }

  /**
   * A stream determined by a list of keys (e.g. seed, epoch, sample index). Keys are non-negative
   * safe integers; each is hashed in as two 32-bit halves, so (1, 2) and (2, 1) differ.
   */
  static fromKeys(...keys: number[]): Rng {
    if (keys.length === 0) throw new DataError('Rng.fromKeys: give at least one key (a seed)');
    let h = 0x9e3779b9;
    for (const k of keys) {
      if (!Number.isSafeInteger(k) || k < 0) throw new DataError(`Rng.fromKeys: keys must be non-negative safe integers, got ${k}`);
      const lo = k >>> 0;
      const hi = Math.floor(k / 2 ** 32) >>> 0;
      h = mix32((h ^ lo) + 0x7f4a7c15);
      h = mix32((h ^ hi) + 0x7f4a7c15);
    }
    // splitmix32-style expansion of the hash into four words.
    const s: number[] = [];
    let x = h;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      s.push(mix32(x));
    }
    if ((s[0]! | s[1]! | s[2]! | s[3]!) === 0) s[0] = 1;
    return new Rng(s);
  }

  static fromState(state: RngState): Rng {
    const s = state?.s;
    if (state?.algorithm !== ALGORITHM || !Array.isArray(s) || s.length !== 4 || !s.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) {
      throw new DataError(`Rng.fromState: not an ${ALGORITHM} state: ${JSON.stringify(state)}`);
    }
    if ((s[0] | s[1] | s[2] | s[3]) === 0) throw new DataError('Rng.fromState: the all-zero state is invalid for xoshiro128**');
    const r = new Rng(s);
    if (state.spare !== undefined) {
      if (!Number.isFinite(state.spare)) throw new DataError(`Rng.fromState: bad spare normal ${state.spare}`);
      r.spare = state.spare;
    }
    return r;
  }

  /** A plain JSON-able snapshot; the generator continues unaffected. */
  state(): RngState {
    const s: RngState['s'] = [this.s0, this.s1, this.s2, this.s3];
    return this.spare === null ? { algorithm: ALGORITHM, s } : { algorithm: ALGORITHM, s, spare: this.spare };
  }

  clone(): Rng {
    return Rng.fromState(this.state());
  }

  /** A uint32. */
  u32(): number {
    const s0 = this.s0, s1 = this.s1, s2 = this.s2, s3 = this.s3;
    const x = Math.imul(s1, 5);
    const r = Math.imul((x << 7) | (x >>> 25), 9) >>> 0;
    const t = s1 << 9;
    const n2 = s2 ^ s0;
    const n3 = s3 ^ s1;
    this.s1 = (s1 ^ n2) >>> 0;
    this.s0 = (s0 ^ n3) >>> 0;
    this.s2 = (n2 ^ t) >>> 0;
    this.s3 = ((n3 << 11) | (n3 >>> 21)) >>> 0;
    return r;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.u32() >>> 5; // 27 bits
    const lo = this.u32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [0, n), without modulo bias; n ≤ 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 2 ** 32) throw new DataError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.u32();
      if (x < limit) return x % n;
    }
  }

  /** True with probability p. */
  bool(p = 0.5): boolean {
    return this.float() < p;
  }

  /** N(0, 1) by Box–Muller, two per pair of uniforms. */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const u1 = 1 - this.float(); // (0, 1]: log stays finite
    const u2 = this.float();
    const r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new DataError('Rng.pick: empty list');
    return items[this.int(items.length)]!;
  }
}
