/**
 * safetensors read/write (src/io): round trips, half-float bit patterns, a golden file built by hand,
 * every header validation error, the atomic file writer, and the swin-tiny fixture when present.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bf16BitsToF32,
  blobSource,
  bytesSource,
  decodeTensor,
  encodeTensor,
  f32ToBf16Bits,
  readHeader,
  readTensor,
  safetensorsLayout,
  toBf16Array,
  writeSafetensors,
  type ByteSource,
  type WriteTensor,
} from '../../src/io/safetensors';
import { fileSource, writeSafetensorsFile } from '../../src/io/node-file';
import { fromF16Array, toF16Array } from '../../src/tensor/half';
import { makeRng } from '../../src/tensor/create';

/** A file from a header given as JSON text (no padding) and raw data bytes: independent of the writer. */
function rawFile(json: string | Uint8Array, data: ArrayLike<number> = []): Uint8Array {
  const head = typeof json === 'string' ? new TextEncoder().encode(json) : json;
  const out = new Uint8Array(8 + head.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(data, 8 + head.length);
  return out;
}
const entry = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
const fileOf = (header: object, dataBytes = 0) => rawFile(JSON.stringify(header), new Uint8Array(dataBytes));
const le16 = (...hs: number[]) => hs.flatMap((h) => [h & 0xff, h >>> 8]);

async function readAll(src: ByteSource, name = 'input') {
  const header = await readHeader(src, name);
  const out: Record<string, Awaited<ReturnType<typeof readTensor>>> = {};
  for (const key of header.tensors.keys()) out[key] = await readTensor(src, header, key);
  return { header, tensors: out };
}

/** Bitwise equality; much faster than toEqual on large typed arrays. */
function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function randomF32(n: number, seed: number): Float32Array {
  const rng = makeRng(seed);
  return Float32Array.from({ length: n }, () => (rng() - 0.5) * 10 ** Math.floor(rng() * 8 - 4));
}

describe('half floats', () => {
  it('widens BF16 bit patterns exactly', () => {
    const cases: [number, number][] = [
      [0x3f80, 1], [0xc000, -2], [0x0000, 0], [0x8000, -0], [0x4049, 3.140625], [0x3dcd, 0.10009765625],
      [0x7f7f, (2 - 2 ** -7) * 2 ** 127], [0x0080, 2 ** -126], [0x0001, 2 ** -133],
      [0x7f80, Infinity], [0xff80, -Infinity],
    ];
    const data = decodeTensor('BF16', new Uint8Array(le16(...cases.map(([h]) => h), 0x7fc0, 0xffc1)));
    cases.forEach(([h, v], i) => expect(data[i], `bf16 0x${h.toString(16)}`).toBe(v));
    expect(Number.isNaN(data[cases.length])).toBe(true);
    expect(Number.isNaN(data[cases.length + 1])).toBe(true);
    for (const [h, v] of cases) expect(bf16BitsToF32(h)).toBe(v);
  });

  it('widens F16 bit patterns exactly', () => {
    const cases: [number, number][] = [
      [0x3c00, 1], [0xc000, -2], [0x0000, 0], [0x8000, -0], [0x7bff, 65504], [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14], [0x3555, 0.333251953125], [0x7c00, Infinity], [0xfc00, -Infinity],
    ];
    const data = decodeTensor('F16', new Uint8Array(le16(...cases.map(([h]) => h), 0x7e00)));
    cases.forEach(([h, v], i) => expect(data[i], `f16 0x${h.toString(16)}`).toBe(v));
    expect(Number.isNaN(data[cases.length])).toBe(true);
  });

  it('rounds f32 to BF16 to nearest, ties to even', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(-2)).toBe(0xc000);
    expect(f32ToBf16Bits(-0)).toBe(0x8000);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // halfway 0x3f80/0x3f81: to even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // halfway 0x3f81/0x3f82: to even
    expect(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // just above halfway
    expect(f32ToBf16Bits(1 + 2 ** -8 - 2 ** -20)).toBe(0x3f80); // just below
    expect(f32ToBf16Bits(3.4028234663852886e38)).toBe(0x7f80); // max f32 rounds past max bf16
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(f32ToBf16Bits(2 ** -149)).toBe(0x0000);
    expect(f32ToBf16Bits(NaN) & 0x7fc0).toBe(0x7fc0);
    // A NaN whose payload lives only in the low 16 bits must stay NaN, not truncate to infinity.
    const bits = new Uint32Array([0x7f800001, 0xff800001]);
    expect(Array.from(toBf16Array(new Float32Array(bits.buffer)), (h) => h & 0xffc0)).toEqual([0x7fc0, 0xffc0]);
  });

  it('rounds random f32 bit patterns to BF16 like a nearest-value search', () => {
    const dv = new DataView(new ArrayBuffer(4));
    const f32 = (bits: number) => (dv.setUint32(0, bits >>> 0), dv.getFloat32(0));
    // Nearest of the two bf16 values around |x| (infinity standing for 2^128), ties to even mantissa.
    const nearest = (bits: number) => {
      const mag = bits & 0x7fffffff;
      const lo = mag >>> 16;
      const value = (h: number) => (h === 0x7f80 ? 2 ** 128 : f32(h << 16));
      const below = f32(mag) - value(lo);
      const above = value(lo + 1) - f32(mag);
      const h = below === 0 || below < above || (below === above && lo % 2 === 0) ? lo : lo + 1;
      return (bits & 0x80000000 ? 0x8000 : 0) | h;
    };
    const rng = makeRng(5);
    const bits = Uint32Array.from({ length: 20000 }, (_, i) => {
      const b = Math.floor(rng() * 2 ** 32);
      return i % 4 === 0 ? (b & 0xffff0000) | 0x8000 : b; // every 4th an exact tie
    }).filter((b) => (b & 0x7fffffff) <= 0x7f800000); // NaNs are checked above
    const got = toBf16Array(new Float32Array(bits.buffer));
    const wrong = [...bits].filter((b, i) => got[i] !== nearest(b)).map((b) => `0x${b.toString(16)}`);
    expect(wrong).toEqual([]);
  });
});

describe('round trips', () => {
  const shapes = [[], [0, 3], [1], [7], [3, 5], [2, 1, 3, 5]];
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`${dtype} with shapes ${shapes.map((s) => `[${s}]`).join(' ')}`, async () => {
      const tensors: WriteTensor[] = shapes.map((shape, i) => ({
        name: `t${i}.weight`, dtype, shape, data: randomF32(shape.reduce((p, d) => p * d, 1), i + 1),
      }));
      const file = writeSafetensors(tensors, { format: 'pt', note: 'ünïcode' });
      const { header, tensors: back } = await readAll(bytesSource(file));
      expect(header.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
      expect([...header.tensors.keys()].sort()).toEqual(tensors.map((t) => t.name).sort());
      for (const t of tensors) {
        const r = back[t.name]!;
        const x = t.data as Float32Array;
        const expected = dtype === 'F32' ? x : dtype === 'F16' ? fromF16Array(toF16Array(x)) : Float32Array.from(toBf16Array(x), bf16BitsToF32);
        expect(r.dtype).toBe(dtype);
        expect(r.shape).toEqual(t.shape);
        expect(r.data).toEqual(expected);
      }
    });
  }

  it('writes Uint16Array data as raw F16/BF16 bits', async () => {
    const bits = new Uint16Array([0x3c00, 0x7bff, 0x0001, 0xc000]);
    const file = writeSafetensors([
      { name: 'h', dtype: 'F16', shape: [2, 2], data: bits },
      { name: 'b', dtype: 'BF16', shape: [4], data: new Uint16Array([0x3f80, 0xc000, 0x7f80, 0x0001]) },
    ]);
    const { tensors } = await readAll(bytesSource(file));
    expect(tensors.h!.data).toEqual(new Float32Array([1, 65504, 2 ** -24, -2]));
    expect(tensors.b!.data).toEqual(new Float32Array([1, -2, Infinity, 2 ** -133]));
  });

  it('reads through a Blob and at unaligned offsets', async () => {
    const file = writeSafetensors([{ name: 'x', dtype: 'F32', shape: [3], data: new Float32Array([1.5, -2, 3]) }]);
    expect((await readAll(blobSource(new Blob([file])))).tensors.x!.data).toEqual(new Float32Array([1.5, -2, 3]));
    // The same file one byte into a larger buffer: Float32Array cannot view it in place.
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    const got = (await readAll(bytesSource(shifted.subarray(1)))).tensors.x!.data;
    expect(got).toEqual(new Float32Array([1.5, -2, 3]));
    expect(got.buffer).not.toBe(shifted.buffer); // the caller owns the result
  });

  it('reads every integer dtype as its typed array, F64 narrowed to f32', async () => {
    const f64 = new Float64Array([1.5, Math.PI]);
    const data = [
      ...new Uint8Array(new BigInt64Array([-(2n ** 62n), 5n]).buffer), // 0..16
      ...new Uint8Array(f64.buffer), // 16..32
      ...new Uint8Array(new Int32Array([-3, 7]).buffer), // 32..40
      ...new Uint8Array(new Int16Array([-32768, 7]).buffer), // 40..44
      0x80, 0x7f, 255, 1, 0, // I8 44..46, U8 46..47, BOOL 47..49
    ];
    const file = rawFile(JSON.stringify({
      i64: entry('I64', [2], [0, 16]), f64: entry('F64', [2], [16, 32]), i32: entry('I32', [1, 2], [32, 40]),
      i16: entry('I16', [2], [40, 44]), i8: entry('I8', [2], [44, 46]), u8: entry('U8', [], [46, 47]), b: entry('BOOL', [2], [47, 49]),
    }), data);
    const { tensors: t } = await readAll(bytesSource(file));
    expect(t.i64!.data).toEqual(new BigInt64Array([-(2n ** 62n), 5n]));
    expect(t.f64!.data).toEqual(new Float32Array([1.5, Math.fround(Math.PI)]));
    expect(t.i32!.data).toEqual(new Int32Array([-3, 7]));
    expect(t.i16!.data).toEqual(new Int16Array([-32768, 7]));
    expect(t.i8!.data).toEqual(new Int8Array([-128, 127]));
    expect(t.u8!.data).toEqual(new Uint8Array([255]));
    expect(t.b!.data).toEqual(new Uint8Array([1, 0]));
  });
});

describe('writer layout', () => {
  it('matches a file built by hand, byte for byte', () => {
    // The reference writer's order: F32, then BF16, then F16, by name; `__metadata__` first.
    const json =
      '{"__metadata__":{"format":"pt"},' +
      '"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"a":{"dtype":"BF16","shape":[],"data_offsets":[8,10]},' +
      '"b":{"dtype":"F16","shape":[3],"data_offsets":[10,16]}}'; // 194 bytes, padded to 200
    const expected = new Uint8Array([
      200, 0, 0, 0, 0, 0, 0, 0,
      ...new TextEncoder().encode(json + '      '),
      0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, // F32 1, -2
      0x80, 0x3f, // BF16 1
      0x00, 0x3c, 0xff, 0x7b, 0x01, 0x00, // F16 1, 65504, 2^-24
    ]);
    const file = writeSafetensors([
      { name: 'b', dtype: 'F16', shape: [3], data: new Float32Array([1, 65504, 2 ** -24]) },
      { name: 'w', dtype: 'F32', shape: [2], data: new Float32Array([1, -2]) },
      { name: 'a', dtype: 'BF16', shape: [], data: new Float32Array([1]) },
    ], { format: 'pt' });
    expect(Array.from(file)).toEqual(Array.from(expected));
  });

  it('keeps integer-like and non-ASCII names in sorted order', async () => {
    const names = ['b', '10', '2', 'é', 'a.0', '__proto__'];
    const file = writeSafetensors(names.map((name) => ({ name, dtype: 'F32', shape: [1], data: new Float32Array([0]) })));
    const n = Number(new DataView(file.buffer).getBigUint64(0, true));
    const text = new TextDecoder().decode(file.subarray(8, 8 + n));
    const order = [...text.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
    expect(order).toEqual(['10', '2', '__proto__', 'a.0', 'b', 'é']);
    expect([...(await readHeader(bytesSource(file))).tensors.keys()]).toEqual(order); // data order
  });

  it('starts the data 8-byte aligned, padding the JSON with spaces', async () => {
    for (let len = 1; len <= 17; len++) {
      const file = writeSafetensors([{ name: 'x'.repeat(len), dtype: 'F16', shape: [1], data: new Float32Array([1]) }]);
      const n = Number(new DataView(file.buffer).getBigUint64(0, true));
      expect((8 + n) % 8).toBe(0);
      const text = new TextDecoder().decode(file.subarray(8, 8 + n));
      expect(text).toMatch(/^\{.*\} {0,7}$/);
      expect((await readHeader(bytesSource(file))).dataStart).toBe(8 + n);
    }
    expect(writeSafetensors([]).length).toBe(16); // "{}" and 6 spaces
  });

  it('gives offsets for writing tensors one at a time', () => {
    const tensors: WriteTensor[] = [
      { name: 'h', dtype: 'F16', shape: [3], data: new Float32Array([1, 2, 3]) },
      { name: 'f', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) },
    ];
    const layout = safetensorsLayout(tensors.map(({ name, dtype, shape }) => ({ name, dtype, shape })));
    const streamed = new Uint8Array(layout.size);
    streamed.set(layout.header);
    let end = layout.header.length;
    for (const p of layout.tensors) {
      expect(p.offset).toBe(end); // array order is a gapless stream
      const bytes = encodeTensor(tensors[p.index]!);
      expect(bytes.length).toBe(p.byteLength);
      streamed.set(bytes, p.offset);
      end += p.byteLength;
    }
    expect(end).toBe(layout.size);
    expect(streamed).toEqual(writeSafetensors(tensors));
  });

  it('rejects bad input before writing anything', () => {
    const t = (over: Partial<WriteTensor>): WriteTensor => ({ name: 'x', dtype: 'F32', shape: [2], data: new Float32Array(2), ...over });
    expect(() => writeSafetensors([t({ data: new Float32Array(3) })])).toThrow(/tensor 'x': 3 values given for F32\[2\]/);
    expect(() => writeSafetensors([t({}), t({})])).toThrow(/'x': appears twice/);
    expect(() => writeSafetensors([t({ shape: [-2] })])).toThrow(/shape/);
    expect(() => writeSafetensors([t({ dtype: 'I32' as 'F32' })])).toThrow(/cannot write dtype "I32"/);
    expect(() => writeSafetensors([t({ data: new Uint16Array(2) })])).toThrow(/cannot be written as F32/);
    expect(() => writeSafetensors([t({ name: '__metadata__' })])).toThrow(/usable tensor name/);
    expect(() => writeSafetensors([], { a: 1 as unknown as string })).toThrow(/__metadata__ entry 'a'/);
  });
});

describe('header validation', () => {
  const F = 'model.safetensors';
  async function rejects(file: Uint8Array, ...fragments: (string | RegExp)[]) {
    const err = await readHeader(bytesSource(file), F).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message.startsWith(`${F}: `), message).toBe(true);
    for (const f of fragments) expect(message).toMatch(f);
  }
  const good = { 'layers.0.weight': entry('F32', [2, 3], [0, 24]) };

  it('accepts the well-formed base case', async () => {
    const h = await readHeader(bytesSource(fileOf(good, 24)), F);
    expect(h.tensors.get('layers.0.weight')).toEqual({ dtype: 'F32', shape: [2, 3], dataOffsets: [0, 24] });
  });
  it('truncated below the length field', () => rejects(new Uint8Array(5), 'truncated: 5 bytes'));
  it('truncated inside the data', () => rejects(fileOf(good, 24).subarray(0, -4), "tensor 'layers.0.weight'", 'reach past the end of the 20-byte data buffer'));
  it('header length beyond the file', async () => {
    const f = fileOf(good, 24);
    new DataView(f.buffer).setBigUint64(0, 5000n, true);
    await rejects(f, 'header length 5000 reaches past the end');
  });
  it('header length over 100 MiB, before reading it', () => {
    const f = new Uint8Array(8);
    new DataView(f.buffer).setBigUint64(0, 2n ** 63n, true);
    return rejects(f, /header length 9223372036854775808 exceeds/);
  });
  it('header length below 2', () => rejects(rawFile('{'), 'header length 1 is too short'));
  it('bad JSON', () => rejects(rawFile('{"a": {'), 'not valid UTF-8 JSON'));
  it('bad UTF-8', () => rejects(rawFile(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), 'not valid UTF-8 JSON')); // {"\xff":1}
  it('not an object', () => rejects(rawFile('[1, 2]'), 'not a JSON object'));
  it('entry not an object', () => rejects(fileOf({ w: [1] }), "tensor 'w': entry must be an object"));
  it('unknown dtype', () => rejects(fileOf({ w: entry('Q4', [2], [0, 2]) }, 2), "tensor 'w'", 'unsupported dtype "Q4"'));
  it('missing dtype', () => rejects(fileOf({ w: { shape: [1], data_offsets: [0, 4] } }, 4), "tensor 'w'", 'unsupported dtype undefined'));
  it('wrong byte length', () =>
    rejects(fileOf({ 'layers.0.weight': entry('F32', [5, 6], [0, 100]) }, 100),
      "tensor 'layers.0.weight': data_offsets [0, 100] hold 100 bytes, but F32[5, 6] needs 120"));
  it('byte length overflowing 2^53', () =>
    rejects(fileOf({ w: entry('F64', [2 ** 30, 2 ** 30, 2 ** 30, 1], [0, 8]) }, 8), "tensor 'w'", 'needs 9903520314283042199192993792'));
  it('offsets out of range', () => rejects(fileOf({ w: entry('U8', [4], [8, 12]) }, 10), "tensor 'w': data_offsets [8, 12] reach past the end of the 10-byte"));
  it('offsets reversed', () => rejects(fileOf({ w: entry('U8', [0], [8, 4]) }, 10), "tensor 'w': data_offsets [8,4] must be"));
  it('offsets not integers', () => rejects(fileOf({ w: entry('U8', [1], [0.5, 1.5]) }, 4), "tensor 'w': data_offsets [0.5,1.5]"));
  it('offsets not a pair', () => rejects(fileOf({ w: entry('U8', [1], [0, 1, 2]) }, 4), "tensor 'w': data_offsets [0,1,2]"));
  it('offsets beyond 2^53', () => rejects(rawFile('{"w":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}}'), "tensor 'w': data_offsets"));
  it('overlapping tensors', () =>
    rejects(fileOf({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) }, 12), "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]"));
  it('negative dims', () => rejects(fileOf({ w: entry('F32', [-1, 2], [0, 0]) }), "tensor 'w': shape [-1,2] must be a list of non-negative integers"));
  it('fractional dims', () => rejects(fileOf({ w: entry('F32', [1.5, 2], [0, 12]) }, 12), "tensor 'w': shape [1.5,2]"));
  it('shape not a list', () => rejects(fileOf({ w: entry('F32', 3, [0, 12]) }, 12), "tensor 'w': shape 3"));
  it('non-string metadata', () => rejects(fileOf({ __metadata__: { epoch: 3 }, ...good }, 24), "__metadata__ entry 'epoch' must be a string, not 3"));
  it('metadata not an object', () => rejects(fileOf({ __metadata__: ['x'] }), '__metadata__ must be an object of strings'));

  it('allows empty tensors anywhere and a scalar', async () => {
    const h = await readHeader(bytesSource(fileOf({ s: entry('I8', [], [8, 9]), a: entry('F32', [2], [0, 8]), e: entry('F32', [0, 3], [4, 4]) }, 9)), F);
    expect([...h.tensors.keys()]).toEqual(['a', 'e', 's']); // by offset
  });

  it('readTensor names the source and a missing key', async () => {
    const src = bytesSource(fileOf(good, 24));
    await expect(readTensor(src, await readHeader(src, F), 'nope')).rejects.toThrow(`${F}: no tensor 'nope'`);
  });

  it('reads no tensor data for the header, and only its range for a tensor', async () => {
    const file = writeSafetensors([
      { name: 'a', dtype: 'F32', shape: [1000], data: new Float32Array(1000) },
      { name: 'b', dtype: 'F32', shape: [10], data: new Float32Array(10).fill(2) },
    ]);
    const reads: [number, number][] = [];
    const inner = bytesSource(file);
    const src: ByteSource = { size: inner.size, read: (o, l) => (reads.push([o, l]), inner.read(o, l)) };
    const h = await readHeader(src);
    expect(reads.reduce((s, [, l]) => s + l, 0)).toBe(h.dataStart);
    reads.length = 0;
    expect((await readTensor(src, h, 'b')).data).toEqual(new Float32Array(10).fill(2));
    expect(reads).toEqual([[h.dataStart + 4000, 40]]);
  });
});

describe('node files', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'reef-safetensors-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('writes atomically, reads back by offset, leaves no temp file', async () => {
    const path = join(dir, 'model.safetensors');
    await writeFile(path, 'old contents');
    const tensors: WriteTensor[] = [
      { name: 'w', dtype: 'F32', shape: [4, 5], data: randomF32(20, 7) },
      { name: 'h', dtype: 'BF16', shape: [3], data: new Float32Array([1, -2, 0.5]) },
      { name: 'z', dtype: 'F16', shape: [0], data: new Float32Array(0) },
    ];
    await writeSafetensorsFile(path, tensors, { step: '12' });
    expect(await readdir(dir)).toEqual(['model.safetensors']);
    expect(new Uint8Array(await readFile(path))).toEqual(writeSafetensors(tensors, { step: '12' }));

    const src = await fileSource(path);
    try {
      const { header, tensors: back } = await readAll(src, path);
      expect(header.metadata).toEqual({ step: '12' });
      expect(back.w!.data).toEqual(tensors[0]!.data);
      expect(back.h!.data).toEqual(new Float32Array([1, -2, 0.5]));
      expect(back.z!.shape).toEqual([0]);
      await expect(src.read(src.size - 2, 4)).rejects.toThrow(path);
    } finally {
      await src.close();
    }
  });

  it('on failure leaves the old file and no temp file', async () => {
    const path = join(dir, 'keep.safetensors');
    await writeFile(path, 'old');
    const bad: WriteTensor = { name: 'w', dtype: 'F32', shape: [2], data: new Float32Array(3) };
    await expect(writeSafetensorsFile(path, [bad])).rejects.toThrow("tensor 'w'");
    await expect(writeSafetensorsFile(join(dir, 'missing-dir', 'x.safetensors'), [])).rejects.toThrow(/ENOENT/);
    expect(await readFile(path, 'utf8')).toBe('old');
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('names the file in header errors', async () => {
    const path = join(dir, 'broken.safetensors');
    await writeFile(path, fileOf({ w: entry('F32', [3], [0, 8]) }, 8));
    const src = await fileSource(path);
    try {
      await expect(readHeader(src, path)).rejects.toThrow(`${path}: tensor 'w': data_offsets [0, 8] hold 8 bytes, but F32[3] needs 12`);
    } finally {
      await src.close();
    }
  });
});

const FIXTURE = '/work/shared/fixtures/swin-tiny';
describe.skipIf(!existsSync(`${FIXTURE}/weights.safetensors`))('swin-tiny fixture', () => {
  async function load(file: string) {
    const path = `${FIXTURE}/${file}`;
    const src = await fileSource(path);
    try {
      return await readAll(src, path);
    } finally {
      await src.close();
    }
  }

  it('reads every weight: finite f32, consistent shapes, packed data', async () => {
    const path = `${FIXTURE}/weights.safetensors`;
    const { header, tensors } = await load('weights.safetensors');
    let params = 0;
    let end = 0;
    const ranges = [...header.tensors.values()].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0]);
    for (const t of ranges) {
      expect(t.dataOffsets[0]).toBe(end); // written without gaps, as the reference does
      end = t.dataOffsets[1];
    }
    expect(header.dataStart + end).toBe((await readFile(path)).length);
    for (const [key, t] of Object.entries(tensors)) {
      expect(key.startsWith('swinViT.'), key).toBe(true);
      expect(t.dtype).toBe('F32');
      expect(t.data.length).toBe(t.shape.reduce((p, d) => p * d, 1));
      expect((t.data as Float32Array).every(Number.isFinite), key).toBe(true);
      params += t.data.length;
    }
    console.log(`swin-tiny weights: ${header.tensors.size} tensors, ${params} parameters`);
    expect(params).toBe(694_998); // as the fixture's README states
    expect(tensors['swinViT.patch_embed.proj.weight']!.shape).toEqual([12, 1, 2, 2, 2]);
    expect(Object.keys(tensors).some((k) => k.includes('relative_position_index'))).toBe(false);

    // Re-written by our writer and read back: identical values.
    const again = await readAll(bytesSource(writeSafetensors(Object.entries(tensors).map(([name, t]) => ({
      name, dtype: 'F32', shape: t.shape, data: t.data as Float32Array,
    })))));
    for (const [key, t] of Object.entries(tensors)) expect(sameBytes(again.tensors[key]!.data, t.data), key).toBe(true);
  });

  it('reads the activations and gradients with the documented shapes', async () => {
    const hidden = await load('hidden.safetensors');
    expect(Object.values(hidden.tensors).map((t) => t.shape)).toEqual([
      [1, 12, 20, 28, 24], [1, 24, 10, 14, 12], [1, 48, 5, 7, 6], [1, 96, 3, 4, 3], [1, 192, 2, 2, 2],
    ]);
    const w = await load('loss_weight.safetensors');
    expect(w.tensors.w!.shape).toEqual([1, 192, 2, 2, 2]);
    const grads = await load('grads.safetensors');
    const weights = await load('weights.safetensors');
    for (const [key, info] of weights.header.tensors) expect(grads.header.tensors.get(key)?.shape, key).toEqual(info.shape);
    expect(grads.tensors.input!.shape).toEqual([1, 1, 40, 56, 48]);
    for (const f of [hidden, w, grads]) {
      for (const [key, t] of Object.entries(f.tensors)) expect((t.data as Float32Array).every(Number.isFinite), key).toBe(true);
    }
  });
});
