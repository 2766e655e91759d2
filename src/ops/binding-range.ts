/**
 * Binding part of a tensor: ops whose tensors exceed the adapter's maxStorageBufferBindingSize bind
 * them in pieces. A piece's binding must start at a multiple of minStorageBufferOffsetAlignment, so
 * it starts at or before the piece's first element and the kernel is told the remaining offset.
 */
import type { BufferSlice } from '../gpu/runtime.js';
import { BYTES_PER_ELEMENT, type Tensor } from '../tensor/tensor.js';

export interface BoundRange {
  slice: BufferSlice;
  /** Elements between the start of the binding and `first`. */
  offset: number;
}

/** Elements [first, end) of `t`, bound from the aligned byte offset at or before `first`. */
export function bindRange(t: Tensor, first: number, end: number): BoundRange {
  const E = BYTES_PER_ELEMENT[t.dtype];
  const align = t.rt.caps.minStorageBufferOffsetAlignment;
  const start = Math.floor((first * E) / align) * align;
  // Binding sizes are whole 4-byte words (odd f16 counts round up, inside the buffer).
  const stop = Math.min(Math.ceil((end * E) / 4) * 4, t.buffer.size);
  return { slice: { buffer: t.buffer, offset: start, size: stop - start }, offset: first - start / E };
}

/** Smallest count of items of `bytes` each whose total is a multiple of `align` bytes. */
export function alignedCount(bytes: number, align: number): number {
  return align / gcd(bytes, align);
}

export function gcd(x: number, y: number): number {
  return y === 0 ? x : gcd(y, x % y);
}

export function lcm(x: number, y: number): number {
  return (x / gcd(x, y)) * y;
}

/**
 * Splits `count` items into pieces of whole `unit`s (so every piece starts at an aligned offset in
 * each array it binds) whose largest binding, `maxItemBytes` per item, fits in `limit` bytes.
 * Null when even one unit does not fit.
 */
export function pieceRanges(count: number, maxItemBytes: number, unit: number, limit: number): [number, number][] | null {
  const per = Math.floor(limit / maxItemBytes / unit) * unit;
  if (per < 1) return null;
  const out: [number, number][] = [];
  for (let start = 0; start < count; start += per) out.push([start, Math.min(per, count - start)]);
  return out;
}

/** Aligned runs [first, count) of a flat array of n elements of `bytesPer` bytes, each fitting one binding. */
export function elementRuns(rt: Tensor['rt'], n: number, bytesPer: number): [number, number][] {
  return pieceRanges(n, bytesPer, alignedCount(bytesPer, rt.caps.minStorageBufferOffsetAlignment), rt.caps.maxStorageBufferBindingSize)!;
}

/** Whether any of `bytes` exceeds the adapter's storage binding limit. */
export function overBindingLimit(rt: Tensor['rt'], ...bytes: number[]): boolean {
  return bytes.some((b) => b > rt.caps.maxStorageBufferBindingSize);
}
