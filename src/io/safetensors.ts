/**
 * safetensors, host side: an 8-byte little-endian u64 N, N bytes of UTF-8 JSON header, then the data
 * buffer (little-endian, row-major, contiguous tensors at `data_offsets` relative to its start).
 *
 * The reader works on a random-access `ByteSource`, so Node files, ArrayBuffers and Blobs share it,
 * and it reads one tensor's byte range at a time: a multi-GB checkpoint is never held twice.
 * The header is treated as hostile: every number in it is checked before anything is read or
 * allocated from it. Typed-array views assume a little-endian host, as WebGPU's buffers do.
 */
import { ReefError } from '../gpu/errors.js';
import { f16BitsToF32, toF16Array } from '../tensor/half.js';

/** Random-access bytes. `read` may return a view into memory the source owns; callers copy to keep. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Promise<Uint8Array>;
}

export type Dtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U64' | 'U32' | 'U16' | 'U8' | 'BOOL';
export type FloatDtype = 'F64' | 'F32' | 'F16' | 'BF16';
export type WriteDtype = 'F32' | 'F16' | 'BF16';

export const DTYPE_BYTES: Readonly<Record<Dtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

/** The reference implementation's limit: a larger header is a denial-of-service attempt, not a model. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** [begin, end) relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** The source's name (a path, a URL), used in error messages. */
  name: string;
  /** Absolute offset of the data buffer: 8 + header length. */
  dataStart: number;
  /**
   * In data order (by offset), so reading them in turn reads the file sequentially. Header order is
   * not kept: JSON.parse moves integer-like keys first. A Map, so names like `__proto__` are plain keys.
   */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string> | undefined;
}

/** Floats come back as f32 (WGSL has no bf16 or f64); integers and BOOL (as U8) as their own arrays. */
export type TensorData =
  | Float32Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

export interface HostTensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

export function bytesSource(buf: Uint8Array): ByteSource {
  return {
    size: buf.byteLength,
    read: async (offset, length) => {
      checkRange(offset, length, buf.byteLength);
      return buf.subarray(offset, offset + length);
    },
  };
}

/** A browser `File`/`Blob` (also in Node): only the requested slice is ever loaded. */
export function blobSource(blob: Blob): ByteSource {
  return {
    size: blob.size,
    read: async (offset, length) => {
      checkRange(offset, length, blob.size);
      return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
    },
  };
}

/** Throws on a range outside [0, size), because `subarray`/`slice` would silently clamp it. */
export function checkRange(offset: number, length: number, size: number, name = 'source'): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new ReefError(`${name}: read of ${length} bytes at offset ${offset} is outside its ${size} bytes`);
  }
}

async function readExact(src: ByteSource, offset: number, length: number, name: string): Promise<Uint8Array> {
  const bytes = await src.read(offset, length);
  if (bytes.byteLength !== length) {
    throw new ReefError(`${name}: read of ${length} bytes at offset ${offset} returned ${bytes.byteLength} (did the file change?)`);
  }
  return bytes;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isDims = (v: unknown): v is number[] => Array.isArray(v) && v.every((d) => Number.isSafeInteger(d) && d >= 0);
/** A header value for an error message, clipped: hostile headers can hold megabytes in one value. */
const show = (v: unknown) => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
};
const typeName = (dtype: string, shape: readonly number[]) => `${dtype}[${shape.join(', ')}]`;

/** Reads and validates the header; reads no tensor data. */
export async function readHeader(src: ByteSource, name = 'input'): Promise<SafetensorsHeader> {
  const fail = (msg: string) => new ReefError(`${name}: ${msg}`);
  if (src.size < 8) throw fail(`truncated: ${src.size} bytes, shorter than the 8-byte header length`);
  const prefix = await readExact(src, 0, 8, name);
  const n64 = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n64 < 2n) throw fail(`header length ${n64} is too short for a JSON object`);
  if (n64 > BigInt(MAX_HEADER_BYTES)) throw fail(`header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const n = Number(n64);
  if (8 + n > src.size) throw fail(`header length ${n} reaches past the end of the ${src.size}-byte file (truncated?)`);

  let json: unknown;
  try {
    // fatal: malformed UTF-8 is an error, not U+FFFD; ignoreBOM keeps a BOM in, so JSON.parse rejects it.
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(await readExact(src, 8, n, name)));
  } catch (e) {
    throw fail(`header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isObject(json)) throw fail('header is not a JSON object');

  const dataSize = src.size - 8 - n;
  const entries: [string, TensorInfo][] = [];
  let metadata: Record<string, string> | undefined;
  for (const [key, entry] of Object.entries(json)) {
    if (key === '__metadata__') {
      if (!isObject(entry)) throw fail(`__metadata__ must be an object of strings, not ${show(entry)}`);
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') throw fail(`__metadata__ entry '${k}' must be a string, not ${show(v)}`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    const bad = (msg: string) => fail(`tensor '${key}': ${msg}`);
    if (!isObject(entry)) throw bad(`entry must be an object, not ${show(entry)}`);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      throw bad(`unsupported dtype ${show(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    if (!isDims(shape)) throw bad(`shape ${show(shape)} must be a list of non-negative integers`);
    if (!isDims(offsets) || offsets.length !== 2 || offsets[0]! > offsets[1]!) {
      throw bad(`data_offsets ${show(offsets)} must be two non-negative integers [begin, end] with begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    const range = `data_offsets [${begin}, ${end}]`;
    if (end > dataSize) throw bad(`${range} reach past the end of the ${dataSize}-byte data buffer (truncated file?)`);
    // BigInt: the product of hostile dims must not round to a plausible size.
    const need = shape.reduce((p, d) => p * BigInt(d), BigInt(DTYPE_BYTES[dtype as Dtype]));
    if (need !== BigInt(end - begin)) {
      throw bad(`${range} hold ${end - begin} bytes, but ${typeName(dtype, shape)} needs ${need}`);
    }
    entries.push([key, { dtype: dtype as Dtype, shape: shape.map((d) => d + 0 /* -0 → 0 */), dataOffsets: [begin, end] }]);
  }
  entries.sort(([, a], [, b]) => a.dataOffsets[0] - b.dataOffsets[0]);

  // In offset order, each non-empty range must start at or after the previous non-empty one's end.
  const ranges = entries.filter(([, t]) => t.dataOffsets[1] > t.dataOffsets[0]);
  for (let i = 1; i < ranges.length; i++) {
    const [prevKey, prev] = ranges[i - 1]!;
    const [key, t] = ranges[i]!;
    if (t.dataOffsets[0] < prev.dataOffsets[1]) {
      throw fail(`tensor '${key}': data_offsets [${t.dataOffsets.join(', ')}] overlap tensor '${prevKey}' [${prev.dataOffsets.join(', ')}]`);
    }
  }
  return { name, dataStart: 8 + n, tensors: new Map(entries), metadata };
}

/** One tensor's raw little-endian bytes; reads only its range. */
export async function readTensorBytes(src: ByteSource, header: SafetensorsHeader, key: string): Promise<Uint8Array> {
  const info = header.tensors.get(key);
  if (!info) throw new ReefError(`${header.name}: no tensor '${key}'`);
  const [begin, end] = info.dataOffsets;
  return readExact(src, header.dataStart + begin, end - begin, header.name);
}

/** One tensor, decoded (floats as f32). The data is a fresh array the caller owns. */
export async function readTensor(src: ByteSource, header: SafetensorsHeader, key: string): Promise<HostTensor> {
  const bytes = await readTensorBytes(src, header, key);
  const info = header.tensors.get(key)!;
  return { dtype: info.dtype, shape: [...info.shape], data: decodeTensor(info.dtype, bytes) };
}

export function decodeTensor(dtype: Dtype, bytes: Uint8Array): TensorData {
  switch (dtype) {
    case 'F64': case 'F32': case 'F16': case 'BF16': return toFloat32(dtype, bytes);
    case 'I64': return owned(bytes, BigInt64Array);
    case 'U64': return owned(bytes, BigUint64Array);
    case 'I32': return owned(bytes, Int32Array);
    case 'U32': return owned(bytes, Uint32Array);
    case 'I16': return owned(bytes, Int16Array);
    case 'U16': return owned(bytes, Uint16Array);
    case 'I8': return owned(bytes, Int8Array);
    case 'U8': case 'BOOL': return owned(bytes, Uint8Array);
  }
}

/** Little-endian float bytes as f32: F16/BF16 widened exactly, F64 rounded to nearest. */
export function toFloat32(dtype: FloatDtype, bytes: Uint8Array): Float32Array {
  switch (dtype) {
    case 'F32': return owned(bytes, Float32Array);
    case 'F64': return new Float32Array(view(bytes, Float64Array));
    case 'F16': {
      const table = f16Table();
      return Float32Array.from(view(bytes, Uint16Array), (h) => table[h]!);
    }
    case 'BF16': {
      // bf16 is the top half of an f32: shifting the bits is exact, NaN payloads included.
      const h = view(bytes, Uint16Array);
      const out = new Float32Array(h.length);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < h.length; i++) bits[i] = h[i]! << 16;
      return out;
    }
  }
}

type ArrayCtor<T> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; BYTES_PER_ELEMENT: number };

/** A typed view of `bytes` (may alias them), copying only when misaligned. */
function view<T>(bytes: Uint8Array, C: ArrayCtor<T>): T {
  if (bytes.byteLength % C.BYTES_PER_ELEMENT) throw new ReefError(`${bytes.byteLength} bytes are not a whole number of ${C.BYTES_PER_ELEMENT}-byte elements`);
  const b = bytes.byteOffset % C.BYTES_PER_ELEMENT === 0 ? bytes : bytes.slice();
  return new C(b.buffer, b.byteOffset, b.byteLength / C.BYTES_PER_ELEMENT);
}

/** Like `view`, but never aliasing a larger buffer (a whole in-memory file): copies unless `bytes` is its buffer. */
function owned<T>(bytes: Uint8Array, C: ArrayCtor<T>): T {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  return view(whole ? bytes : bytes.slice(), C);
}

let f16ToF32: Float32Array | undefined;
/** All 65536 f16 values: a lookup beats bit manipulation per element for large tensors. */
function f16Table(): Float32Array {
  if (!f16ToF32) {
    f16ToF32 = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16ToF32[h] = f16BitsToF32(h);
  }
  return f16ToF32;
}

// ---------------------------------------------------------------------------------------------
// bf16 conversion (f16 lives in ../tensor/half.ts)

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** The bf16 bits nearest to `x` rounded to f32 (ties to even). NaN stays NaN (quiet, sign kept). */
export function f32ToBf16Bits(x: number): number {
  f32Scratch[0] = x;
  return bitsToBf16(u32Scratch[0]!);
}

function bitsToBf16(b: number): number {
  // Rounding a NaN's low bits could carry into the exponent or leave an infinity: force quiet instead.
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40;
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

export function bf16BitsToF32(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0]!;
}

export function toBf16Array(src: ArrayLike<number>): Uint16Array {
  const f = src instanceof Float32Array ? src : Float32Array.from(src);
  const bits = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = bitsToBf16(bits[i]!);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface TensorEntry {
  name: string;
  dtype: WriteDtype;
  shape: number[];
  /** f32 values (converted to `dtype`), or for F16/BF16 the raw bits. Optional for a layout. */
  data?: Float32Array | Uint16Array;
}
export type WriteTensor = TensorEntry & { data: Float32Array | Uint16Array };

export interface SafetensorsLayout {
  /** The 8-byte length and the space-padded JSON: tensor data starts right after, 8-byte aligned. */
  header: Uint8Array<ArrayBuffer>;
  /** In file order; `index` is the position in the entries given, `offset` absolute in the file. */
  tensors: { name: string; index: number; dtype: WriteDtype; shape: number[]; offset: number; byteLength: number }[];
  /** Total file size. */
  size: number;
}

const WRITE_BYTES: Readonly<Record<WriteDtype, number>> = { F32: 4, BF16: 2, F16: 2 };

/**
 * Header and placement for `entries`, so tensors can be written one at a time: write `header`, then
 * each tensor's `encodeTensor` bytes at its `offset` (in array order that is a gapless stream).
 * Order as the reference implementation's: F32, then BF16, then F16 (keeps each tensor aligned to its
 * element size), by name within a dtype; JSON keys in the same order, `__metadata__` first, so for
 * these dtypes the bytes match the reference writer's.
 */
export function safetensorsLayout(entries: readonly TensorEntry[], metadata?: Record<string, string>): SafetensorsLayout {
  const seen = new Set<string>();
  for (const t of entries) {
    const bad = (msg: string) => new ReefError(`safetensors write: tensor '${t.name}': ${msg}`);
    if (typeof t.name !== 'string' || t.name === '__metadata__') throw bad('is not a usable tensor name');
    if (seen.has(t.name)) throw bad('appears twice');
    seen.add(t.name);
    if (!Object.hasOwn(WRITE_BYTES, t.dtype)) throw bad(`cannot write dtype ${JSON.stringify(t.dtype)} (F32, F16 or BF16)`);
    if (!isDims(t.shape)) throw bad(`shape ${JSON.stringify(t.shape)} must be a list of non-negative integers`);
    if (t.data) checkData(t as WriteTensor);
  }
  for (const [k, v] of Object.entries(metadata ?? {})) {
    if (typeof v !== 'string') throw new ReefError(`safetensors write: __metadata__ entry '${k}' must be a string`);
  }

  const rank = { F32: 0, BF16: 1, F16: 2 } as const;
  const order = entries.map((t, index) => ({ t, index }));
  order.sort((a, b) => rank[a.t.dtype] - rank[b.t.dtype] || (a.t.name < b.t.name ? -1 : a.t.name > b.t.name ? 1 : 0));

  // The JSON is built by hand: a JS object would move integer-like names ("0", "10") to the front.
  const parts: string[] = [];
  if (metadata) {
    const keys = Object.keys(metadata).sort();
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let pos = 0;
  const placed = order.map(({ t, index }) => {
    const byteLength = t.shape.reduce((p, d) => p * d, WRITE_BYTES[t.dtype]);
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${pos},${pos + byteLength}]}`);
    const at = pos;
    pos += byteLength;
    return { name: t.name, index, dtype: t.dtype, shape: [...t.shape], offset: at, byteLength };
  });
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  // Pad with spaces (valid JSON whitespace, as the reference does) so the data starts 8-byte aligned.
  const n = Math.ceil(json.length / 8) * 8;
  const header = new Uint8Array(8 + n).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(n), true);
  header.set(json, 8);
  for (const p of placed) p.offset += header.length;
  return { header, tensors: placed, size: header.length + pos };
}

function checkData(t: WriteTensor): void {
  const n = t.shape.reduce((p, d) => p * d, 1);
  const what = `safetensors write: tensor '${t.name}'`;
  if (!(t.data instanceof Float32Array || t.data instanceof Uint16Array)) throw new ReefError(`${what}: data must be a Float32Array or Uint16Array`);
  if (t.data instanceof Uint16Array && t.dtype === 'F32') throw new ReefError(`${what}: Uint16Array data (raw half bits) cannot be written as F32`);
  if (t.data.length !== n) throw new ReefError(`${what}: ${t.data.length} values given for ${typeName(t.dtype, t.shape)} (${n} elements)`);
}

/** One tensor's little-endian bytes as stored (F32 data is viewed, not copied). */
export function encodeTensor(t: WriteTensor): Uint8Array {
  checkData(t);
  const d = t.data;
  const bits = d instanceof Uint16Array ? d : t.dtype === 'F16' ? toF16Array(d) : t.dtype === 'BF16' ? toBf16Array(d) : d;
  return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
}

/** A whole safetensors file in memory; for large models prefer `safetensorsLayout` + `encodeTensor`. */
export function writeSafetensors(tensors: readonly WriteTensor[], metadata?: Record<string, string>): Uint8Array<ArrayBuffer> {
  const layout = safetensorsLayout(tensors, metadata);
  const out = new Uint8Array(layout.size);
  out.set(layout.header, 0);
  for (const p of layout.tensors) out.set(encodeTensor(tensors[p.index]!), p.offset);
  return out;
}
