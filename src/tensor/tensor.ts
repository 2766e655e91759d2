/**
 * GPU tensors: a shape, an element type and a reference-counted pooled buffer.
 *
 * Tensors are contiguous and row-major. `reshape` shares the buffer; everything else makes a new
 * one. JavaScript has no destructors, so memory is returned by `dispose()` or by a `tidy` scope,
 * which disposes every tensor created inside it except what it returns.
 */
import type { Runtime } from '../gpu/runtime.js';
import { ReefError } from '../gpu/errors.js';
import { fromF16Array } from './half.js';

export type DType = 'f32' | 'f16';

export const BYTES_PER_ELEMENT: Record<DType, number> = { f32: 4, f16: 2 };

/** A pooled GPU buffer shared by the tensors that view it. */
export class Storage {
  private refs = 1;

  constructor(
    readonly rt: Runtime,
    readonly buffer: GPUBuffer,
  ) {}

  retain(): this {
    if (this.refs <= 0) throw new ReefError('use of a released tensor buffer');
    this.refs++;
    return this;
  }

  release(): void {
    if (--this.refs === 0) this.rt.pool.release(this.buffer);
  }

  get alive(): boolean {
    return this.refs > 0;
  }

  /** More than one tensor views this buffer, so it must not be written in place. */
  get shared(): boolean {
    return this.refs > 1;
  }
}

/** One step of the autograd tape: how to send the output's gradient back to the inputs. */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Tensors kept for backward (sharing storage with what the op saw). */
  saved: Tensor[];
  readonly backward: (grad: Tensor, saved: readonly Tensor[]) => (Tensor | null)[];
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function checkShape(shape: readonly number[], what = 'shape'): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ReefError(`${what} [${shape.join(', ')}] has a dimension that is not a non-negative integer`);
  }
}

const scopes: Set<Tensor>[] = [];
let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly size: number;
  requiresGrad = false;
  /** Accumulated gradient of a leaf tensor after `backward()`. */
  grad: Tensor | null = null;
  gradFn: GradNode | null = null;
  /** Set once backward or releaseGraph has freed the op that made this tensor. */
  graphFreed = false;
  name = '';
  private store: Storage | null;

  constructor(
    readonly rt: Runtime,
    storage: Storage,
    shape: readonly number[],
    readonly dtype: DType,
    track = true,
  ) {
    checkShape(shape);
    this.shape = Object.freeze([...shape]);
    this.size = numel(shape);
    this.store = storage;
    if (track) scopes[scopes.length - 1]?.add(this);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get byteSize(): number {
    return this.size * BYTES_PER_ELEMENT[this.dtype];
  }

  get storage(): Storage {
    if (!this.store) throw new ReefError(`tensor ${this.describe()} was disposed`);
    return this.store;
  }

  get buffer(): GPUBuffer {
    return this.storage.buffer;
  }

  get isDisposed(): boolean {
    return this.store === null;
  }

  /** A second handle on the same data, kept alive independently (used by the tape). */
  share(track = false): Tensor {
    const t = new Tensor(this.rt, this.storage.retain(), this.shape, this.dtype, track);
    t.name = this.name;
    return t;
  }

  /** Reads the values back as f32. */
  async read(): Promise<Float32Array> {
    const raw = await this.rt.read(this.buffer, 0, this.byteSize);
    return this.dtype === 'f32' ? new Float32Array(raw) : fromF16Array(new Uint16Array(raw));
  }

  /** Reads a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ReefError(`item() needs one element, ${this.describe()} has ${this.size}`);
    return (await this.read())[0]!;
  }

  /** Returns the buffer to the pool (once no other handle shares it). Safe to call twice. */
  dispose(): void {
    if (!this.store) return;
    this.store.release();
    this.store = null;
    scopes[scopes.length - 1]?.delete(this);
  }

  describe(): string {
    return `${this.name ? `'${this.name}' ` : ''}${this.dtype}[${this.shape.join('×')}]`;
  }
}

type Tensors = Tensor | Tensor[] | { [k: string]: unknown } | void | number | undefined;

function collect(value: unknown, into: Set<Tensor>, seen = new Set<object>()): void {
  if (value instanceof Tensor) into.add(value);
  else if (value && typeof value === 'object' && !seen.has(value)) {
    seen.add(value);
    for (const v of Array.isArray(value) ? value : Object.values(value)) collect(v, into, seen);
  }
}

/**
 * Runs `fn` and disposes every tensor created inside that it does not return (nested scopes pass
 * their results up). Tensors held by the tape stay alive through their own shared handles.
 */
export function tidy<T extends Tensors>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    for (const t of scope) t.dispose();
    throw e;
  } finally {
    scopes.pop();
  }
  const keepers = new Set<Tensor>();
  collect(result, keepers);
  for (const t of scope) if (!keepers.has(t)) t.dispose();
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of keepers) if (scope.has(t)) parent.add(t);
  return result;
}

/** Takes a tensor out of the enclosing `tidy` scope so it outlives it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}
