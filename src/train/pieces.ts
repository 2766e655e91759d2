/**
 * Elementwise optimizer kernels bind each tensor whole; one over the adapter's
 * maxStorageBufferBindingSize is bound in consecutive pieces, each starting at an aligned offset.
 */
import { ReefError } from '../gpu/errors.js';
import type { Runtime } from '../gpu/runtime.js';
import { gcd, lcm } from '../ops/binding-range.js';
import { empty } from '../tensor/create.js';
import { zeros } from '../tensor/fill.js';
import type { Tensor } from '../tensor/tensor.js';

export interface Piece {
  /** First element. */
  first: number;
  count: number;
}

/** Splits n elements of `bytesPerElement` into pieces that each fit one binding. */
export function elementPieces(rt: Runtime, n: number, bytesPerElement: number, granule = 1): Piece[] {
  const align = rt.caps.minStorageBufferOffsetAlignment;
  // A piece length that keeps every piece start aligned and a multiple of `granule` elements.
  const unit = lcm(Math.max(1, align / gcd(align, bytesPerElement)), granule);
  const perPiece = Math.floor(rt.caps.maxStorageBufferBindingSize / bytesPerElement / unit) * unit;
  if (perPiece <= 0) throw new ReefError(`maxStorageBufferBindingSize ${rt.caps.maxStorageBufferBindingSize} is too small to bind ${unit} elements`);
  const out: Piece[] = [];
  for (let first = 0; first < n; first += perPiece) out.push({ first, count: Math.min(perPiece, n - first) });
  return out;
}

/** The binding of elements [first, first+count) of a buffer (whole 4-byte words, inside the buffer). */
export function pieceSlice(buffer: GPUBuffer, piece: Piece, bytesPerElement: number): { buffer: GPUBuffer; offset: number; size: number } {
  const offset = piece.first * bytesPerElement;
  const size = Math.min(Math.ceil((piece.count * bytesPerElement) / 4) * 4, buffer.size - offset);
  return { buffer, offset, size };
}


/** An f32 tensor of zeros of any size (the fill kernel binds its output whole, so a tensor over the
 * binding limit is zeroed by uploads of a zero block instead). */
export function zerosF32(rt: Runtime, shape: readonly number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n * 4 <= rt.caps.maxStorageBufferBindingSize) return zeros(rt, shape);
  const t = empty(rt, shape, 'f32', 'zeros');
  const block = new Float32Array(Math.min(n, 1 << 20));
  for (let first = 0; first < n; first += block.length) {
    const count = Math.min(block.length, n - first);
    rt.write(t.buffer, block.subarray(0, count), first * 4, true);
  }
  return t;
}
