/**
 * PyTorch .pt loading (src/io/torch-pt.ts, src/io/zip.ts): archives built here from hand-written
 * pickle bytes and a hand-written zip writer (STORED, DEFLATE, ZIP64 end records), the restricted
 * unpickler's refusals, corrupt-archive errors, and two real torch.save files (torch 1.13) in fixtures/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { deflateSync, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { bytesSource, f32ToBf16Bits, type ByteSource } from '../../src/io/safetensors';
import { ALLOWED_GLOBALS, readTorchArchive, readTorchStateDict, readTorchTensor } from '../../src/io/torch-pt';
import { crc32, readZipDirectory, readZipEntry, readZipEntryRange } from '../../src/io/zip';
import { toF16Array } from '../../src/tensor/half';

// ---------------------------------------------------------------------------------------------
// A tiny pickle writer (protocol 2 opcodes plus a few of protocol 4)

class Pickle {
  private readonly out: number[] = [];
  private memo = 0;
  op(...bs: number[]) { this.out.push(...bs); return this; }
  private u32(n: number) { return this.op(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff); }
  proto(v = 2) { return this.op(0x80, v); }
  mark() { return this.op(0x28); }
  stop() { return this.op(0x2e); }
  str(s: string) { const b = new TextEncoder().encode(s); return this.op(0x58).u32(b.length).op(...b); } // BINUNICODE
  shortStr(s: string) { const b = new TextEncoder().encode(s); return this.op(0x8c, b.length, ...b); } // SHORT_BINUNICODE
  int(n: number) {
    if (n >= 0 && n < 256) return this.op(0x4b, n); // BININT1
    if (n >= 0 && n < 65536) return this.op(0x4d, n & 0xff, n >>> 8); // BININT2
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.op(0x4a).u32(n >>> 0); // BININT
    return this.long(BigInt(n));
  }
  long(v: bigint) { // LONG1, little-endian two's complement
    const bs: number[] = [];
    let x = v;
    do { bs.push(Number(x & 0xffn)); x >>= 8n; } while (!(x === 0n && !(bs[bs.length - 1]! & 0x80)) && !(x === -1n && bs[bs.length - 1]! & 0x80));
    return this.op(0x8a, bs.length, ...bs);
  }
  float(x: number) { const b = new Uint8Array(8); new DataView(b.buffer).setFloat64(0, x, false); return this.op(0x47, ...b); }
  bool(b: boolean) { return this.op(b ? 0x88 : 0x89); }
  none() { return this.op(0x4e); }
  global(module: string, name: string) { return this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`)); }
  stackGlobal(module: string, name: string) { return this.shortStr(module).shortStr(name).op(0x93); }
  put() { return this.op(0x71, this.memo++); } // BINPUT (also counts for MEMOIZE)
  memoize() { this.memo++; return this.op(0x94); }
  get(i: number) { return this.op(0x68, i); }
  emptyDict() { return this.op(0x7d); }
  emptyTuple() { return this.op(0x29); }
  emptyList() { return this.op(0x5d); }
  tuple() { return this.op(0x74); }
  tupleN(n: 1 | 2 | 3) { return this.op(0x84 + n); }
  setitems() { return this.op(0x75); }
  setitem() { return this.op(0x73); }
  appends() { return this.op(0x65); }
  reduce() { return this.op(0x52); }
  build() { return this.op(0x62); }
  persid() { return this.op(0x51); }
  frame(n: number) { return this.op(0x95, n & 0xff, (n >>> 8) & 0xff, 0, 0, 0, 0, 0, 0); }
  dims(ds: number[]) { this.mark(); for (const d of ds) this.int(d); return this.tuple(); }
  /** `_rebuild_tensor_v2(('storage', cls, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`. */
  tensor(cls: string, key: string, numel: number, size: number[], opts: { offset?: number; stride?: number[]; parameter?: boolean } = {}) {
    if (opts.parameter) this.global('torch._utils', '_rebuild_parameter').mark();
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', cls).str(key).str('cpu').int(numel).tuple().persid();
    this.int(opts.offset ?? 0).dims(size).dims(opts.stride ?? rowMajor(size)).bool(false);
    this.global('collections', 'OrderedDict').emptyTuple().reduce();
    this.tuple().reduce();
    if (opts.parameter) this.bool(true).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
    return this;
  }
  bytes() { return new Uint8Array(this.out); }
}

function rowMajor(shape: number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1]! * shape[i + 1]!;
  return s;
}

/** An OrderedDict state dict pickle: `entries` each emit one value after its key. */
function stateDictPickle(entries: [string, (p: Pickle) => void][], metadata = false): Uint8Array {
  const p = new Pickle().proto(2).global('collections', 'OrderedDict').put().emptyTuple().reduce().put().mark();
  for (const [k, v] of entries) { p.str(k); v(p); }
  p.setitems();
  if (metadata) {
    // state = {'_metadata': OrderedDict([('', {'version': 1})])}, as nn.Module.state_dict() pickles it.
    p.emptyDict().str('_metadata').global('collections', 'OrderedDict').emptyTuple().reduce()
      .str('').emptyDict().str('version').int(1).setitem().setitem().setitem().build();
  }
  return p.stop().bytes();
}

// ---------------------------------------------------------------------------------------------
// A tiny zip writer: STORED or DEFLATE entries, optional ZIP64 end records and extra fields

interface ZipIn { name: string; data: Uint8Array; deflate?: boolean }

function writeZip(files: ZipIn[], opts: { zip64?: boolean; comment?: string; pad?: boolean } = {}): Uint8Array {
  const chunks: Uint8Array[] = [];
  let pos = 0;
  const emit = (b: Uint8Array) => { chunks.push(b); pos += b.length; };
  const central: Uint8Array[] = [];
  for (const f of files) {
    const name = new TextEncoder().encode(f.name);
    const body = f.deflate ? deflateSync(f.data) : f.data;
    const crc = zlibCrc32(f.data);
    const at = pos;
    // torch pads local headers with an extra field so data is 64-byte aligned: the central one has none.
    const padLen = opts.pad ? (64 - ((at + 30 + name.length + 4) % 64)) % 64 : 0;
    const local = new Uint8Array(30 + name.length + (opts.pad ? 4 + padLen : 0));
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true); lv.setUint16(4, 20, true); lv.setUint16(8, f.deflate ? 8 : 0, true);
    lv.setUint32(14, crc, true); lv.setUint32(18, body.length, true); lv.setUint32(22, f.data.length, true);
    lv.setUint16(26, name.length, true); lv.setUint16(28, opts.pad ? 4 + padLen : 0, true);
    local.set(name, 30);
    if (opts.pad) { lv.setUint16(30 + name.length, 0x4246, true); lv.setUint16(32 + name.length, padLen, true); }
    emit(local);
    emit(body);
    const extra = opts.zip64 ? 28 : 0;
    const c = new Uint8Array(46 + name.length + extra);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true); cv.setUint16(4, 45, true); cv.setUint16(6, 20, true); cv.setUint16(10, f.deflate ? 8 : 0, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, opts.zip64 ? 0xffffffff : body.length, true);
    cv.setUint32(24, opts.zip64 ? 0xffffffff : f.data.length, true);
    cv.setUint16(28, name.length, true); cv.setUint16(30, extra, true);
    cv.setUint32(42, opts.zip64 ? 0xffffffff : at, true);
    c.set(name, 46);
    if (opts.zip64) {
      const e = 46 + name.length;
      cv.setUint16(e, 1, true); cv.setUint16(e + 2, 24, true);
      cv.setBigUint64(e + 4, BigInt(f.data.length), true); cv.setBigUint64(e + 12, BigInt(body.length), true); cv.setBigUint64(e + 20, BigInt(at), true);
    }
    central.push(c);
  }
  const cdOffset = pos;
  for (const c of central) emit(c);
  const cdSize = pos - cdOffset;
  if (opts.zip64) {
    const rec = new Uint8Array(56);
    const rv = new DataView(rec.buffer);
    rv.setUint32(0, 0x06064b50, true); rv.setBigUint64(4, 44n, true); rv.setUint16(12, 45, true); rv.setUint16(14, 45, true);
    rv.setBigUint64(24, BigInt(files.length), true); rv.setBigUint64(32, BigInt(files.length), true);
    rv.setBigUint64(40, BigInt(cdSize), true); rv.setBigUint64(48, BigInt(cdOffset), true);
    const recAt = pos;
    emit(rec);
    const loc = new Uint8Array(20);
    const lv = new DataView(loc.buffer);
    lv.setUint32(0, 0x07064b50, true); lv.setBigUint64(8, BigInt(recAt), true); lv.setUint32(16, 1, true);
    emit(loc);
  }
  const comment = new TextEncoder().encode(opts.comment ?? '');
  const end = new Uint8Array(22 + comment.length);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, opts.zip64 ? 0xffff : files.length, true); ev.setUint16(10, opts.zip64 ? 0xffff : files.length, true);
  ev.setUint32(12, opts.zip64 ? 0xffffffff : cdSize, true); ev.setUint32(16, opts.zip64 ? 0xffffffff : cdOffset, true);
  ev.setUint16(20, comment.length, true);
  end.set(comment, 22);
  emit(end);
  const out = new Uint8Array(pos);
  let o = 0;
  for (const ch of chunks) { out.set(ch, o); o += ch.length; }
  return out;
}

const f32Bytes = (xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const f64Bytes = (xs: number[]) => new Uint8Array(new Float64Array(xs).buffer);
const f16Bytes = (xs: number[]) => new Uint8Array(toF16Array(new Float32Array(xs)).buffer);
const bf16Bytes = (xs: number[]) => new Uint8Array(new Uint16Array(xs.map(f32ToBf16Bits)).buffer);
const i64Bytes = (xs: bigint[]) => new Uint8Array(new BigInt64Array(xs).buffer);
const i32Bytes = (xs: number[]) => new Uint8Array(new Int32Array(xs).buffer);

/** A torch.save-like archive: `<prefix>/data.pkl`, `<prefix>/data/<key>`, `<prefix>/version`. */
function ptFile(pkl: Uint8Array, storages: Record<string, Uint8Array>, opts: { prefix?: string; deflate?: boolean; zip64?: boolean; pad?: boolean; extra?: ZipIn[] } = {}): Uint8Array {
  const prefix = opts.prefix ?? 'archive';
  return writeZip([
    { name: `${prefix}/data.pkl`, data: pkl, deflate: opts.deflate },
    ...Object.entries(storages).map(([k, data]) => ({ name: `${prefix}/data/${k}`, data, deflate: opts.deflate })),
    { name: `${prefix}/version`, data: new TextEncoder().encode('3\n') },
    ...(opts.extra ?? []),
  ], opts);
}

const load = (file: Uint8Array, name = 'model.pt', root?: string) => readTorchStateDict(bytesSource(file), name, root === undefined ? {} : { root });

/** A basic mixed-dtype state dict and its expected values. */
function mixedFile(opts: Parameters<typeof ptFile>[2] = {}) {
  const pkl = stateDictPickle([
    ['w', (p) => p.tensor('FloatStorage', '0', 6, [2, 3])],
    ['h', (p) => p.tensor('HalfStorage', '1', 3, [3])],
    ['b', (p) => p.tensor('BFloat16Storage', '2', 4, [2, 2])],
    ['d', (p) => p.tensor('DoubleStorage', '3', 2, [2])],
    ['n', (p) => p.tensor('LongStorage', '4', 3, [3])],
    ['i', (p) => p.tensor('IntStorage', '5', 2, [1, 2])],
    ['m', (p) => p.tensor('BoolStorage', '6', 3, [3])],
    ['u', (p) => p.tensor('ByteStorage', '7', 2, [2])],
  ]);
  return ptFile(pkl, {
    0: f32Bytes([1.5, -2, 3.25, 0.1, 1e-30, -0]),
    1: f16Bytes([0.5, -65504, 6.103515625e-5]),
    2: bf16Bytes([1, -2.5, 3.140625, 1e38]),
    3: f64Bytes([0.1, -1e300]),
    4: i64Bytes([-1n, 2n ** 62n, 5n]),
    5: i32Bytes([-7, 2 ** 31 - 1]),
    6: new Uint8Array([1, 0, 1]),
    7: new Uint8Array([0, 255]),
  }, opts);
}

async function expectMixed(sd: Map<string, { dtype: string; shape: number[]; data: unknown }>) {
  expect([...sd.keys()]).toEqual(['w', 'h', 'b', 'd', 'n', 'i', 'm', 'u']);
  expect(sd.get('w')).toEqual({ dtype: 'F32', shape: [2, 3], data: new Float32Array([1.5, -2, 3.25, 0.1, 1e-30, -0]) });
  expect(sd.get('h')).toEqual({ dtype: 'F16', shape: [3], data: new Float32Array([0.5, -65504, 6.103515625e-5]) });
  expect(sd.get('b')).toEqual({ dtype: 'BF16', shape: [2, 2], data: new Float32Array([1, -2.5, 3.140625, 9.969209968386869e37]) });
  expect(sd.get('d')).toEqual({ dtype: 'F64', shape: [2], data: new Float32Array([0.1, -Infinity]) });
  expect(sd.get('n')).toEqual({ dtype: 'I64', shape: [3], data: new BigInt64Array([-1n, 2n ** 62n, 5n]) });
  expect(sd.get('i')).toEqual({ dtype: 'I32', shape: [1, 2], data: new Int32Array([-7, 2 ** 31 - 1]) });
  expect(sd.get('m')).toEqual({ dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) });
  expect(sd.get('u')).toEqual({ dtype: 'U8', shape: [2], data: new Uint8Array([0, 255]) });
  expect(Object.is((sd.get('w')!.data as Float32Array)[5], -0)).toBe(true);
}

// ---------------------------------------------------------------------------------------------

describe('zip reader', () => {
  const files: ZipIn[] = [
    { name: 'a/x.bin', data: new Uint8Array([1, 2, 3, 4, 5]) },
    { name: 'a/y.txt', data: new TextEncoder().encode('hello '.repeat(100)), deflate: true },
    { name: 'a/empty', data: new Uint8Array(0) },
  ];

  it.each([
    ['plain', {}],
    ['with ZIP64 end records and extra fields', { zip64: true }],
    ['with a comment and padded local headers', { comment: 'PK\x05\x06 not a record', pad: true }],
  ])('reads STORED and DEFLATE entries (%s)', async (_, opts) => {
    const src = bytesSource(writeZip(files, opts));
    const zip = await readZipDirectory(src, 'z.zip');
    expect(zip.zip64).toBe(!!(opts as { zip64?: boolean }).zip64);
    expect([...zip.entries.keys()]).toEqual(['a/x.bin', 'a/y.txt', 'a/empty']);
    for (const f of files) expect(await readZipEntry(src, zip, f.name)).toEqual(f.data);
    expect(await readZipEntryRange(src, zip, 'a/x.bin', 1, 3)).toEqual(new Uint8Array([2, 3, 4]));
    expect(await readZipEntryRange(src, zip, 'a/y.txt', 6, 5)).toEqual(new TextEncoder().encode('hello'));
    await expect(readZipEntryRange(src, zip, 'a/x.bin', 3, 3)).rejects.toThrow(/z\.zip.*a\/x\.bin.*outside its 5 bytes/);
  });

  it('reads an archive written by fflate', async () => {
    const src = bytesSource(zipSync({ 'p/q.bin': [new Uint8Array([9, 8, 7]), { level: 0 }], 'p/r.txt': [new TextEncoder().encode('abc'.repeat(50)), { level: 9 }] }));
    const zip = await readZipDirectory(src, 'f.zip');
    expect(zip.entries.get('p/r.txt')!.method).toBe(8);
    expect(await readZipEntry(src, zip, 'p/q.bin')).toEqual(new Uint8Array([9, 8, 7]));
    expect(new TextDecoder().decode(await readZipEntry(src, zip, 'p/r.txt'))).toBe('abc'.repeat(50));
  });

  it('computes CRC-32 as zlib does', () => {
    const b = new TextEncoder().encode('The quick brown fox jumps over the lazy dog');
    expect(crc32(b)).toBe(zlibCrc32(b));
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('rejects truncated and corrupt archives, naming the file', async () => {
    const good = writeZip(files);
    const open = (b: Uint8Array) => readZipDirectory(bytesSource(b), 'bad.zip');
    await expect(open(good.subarray(0, 10))).rejects.toThrow(/bad\.zip: not a zip archive/);
    await expect(open(good.subarray(0, good.length - 5))).rejects.toThrow(/bad\.zip: not a zip archive \(no end-of-central-directory/);
    // Cut from the front: the directory's offsets now point past its records.
    await expect(open(good.subarray(20))).rejects.toThrow(/bad\.zip: .*(central directory|outside)/);
    // A damaged central header signature.
    const bad = good.slice();
    const cd = new DataView(bad.buffer).getUint32(bad.length - 6, true);
    bad[cd] = 0;
    await expect(open(bad)).rejects.toThrow(/bad\.zip: bad central directory: entry 0/);
    // An entry count that cannot fit.
    const many = good.slice();
    new DataView(many.buffer).setUint16(many.length - 12, 999, true);
    await expect(open(many)).rejects.toThrow(/bad\.zip: 999 entries cannot fit/);
    // A CRC mismatch in the data.
    const flipped = good.slice();
    flipped[30 + 'a/x.bin'.length] = flipped[30 + 'a/x.bin'.length]! ^ 1;
    const zip = await open(flipped);
    await expect(readZipEntry(bytesSource(flipped), zip, 'a/x.bin')).rejects.toThrow(/bad\.zip: zip entry 'a\/x\.bin': CRC-32 mismatch/);
    await expect(readZipEntry(bytesSource(flipped), zip, 'nope')).rejects.toThrow(/bad\.zip: zip has no entry 'nope'/);
  });

  it('rejects a ZIP64 locator pointing outside the file', async () => {
    const z = writeZip(files, { zip64: true });
    new DataView(z.buffer).setBigUint64(z.length - 22 - 20 + 8, 10n ** 12n, true);
    await expect(readZipDirectory(bytesSource(z), 'big.zip')).rejects.toThrow(/big\.zip: ZIP64 end-of-central-directory offset/);
  });
});

describe('readTorchStateDict', () => {
  it('loads f32/f16/bf16/f64/i64/i32/bool/u8 tensors exactly', async () => {
    await expectMixed(await load(mixedFile()));
  });

  it('loads DEFLATE entries, ZIP64 end records and padded local headers alike', async () => {
    await expectMixed(await load(mixedFile({ deflate: true })));
    await expectMixed(await load(mixedFile({ zip64: true, pad: true, prefix: 'my model v2' })));
  });

  it('loads a 0-d scalar, an empty tensor and a Parameter', async () => {
    const pkl = stateDictPickle([
      ['s', (p) => p.tensor('FloatStorage', '0', 1, [])],
      ['e', (p) => p.tensor('FloatStorage', '1', 0, [0, 3])],
      ['p', (p) => p.tensor('FloatStorage', '2', 2, [2], { parameter: true })],
    ]);
    const sd = await load(ptFile(pkl, { 0: f32Bytes([3.5]), 1: new Uint8Array(0), 2: f32Bytes([1, 2]) }));
    expect(sd.get('s')).toEqual({ dtype: 'F32', shape: [], data: new Float32Array([3.5]) });
    expect(sd.get('e')).toEqual({ dtype: 'F32', shape: [0, 3], data: new Float32Array(0) });
    expect(sd.get('p')).toEqual({ dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) });
  });

  it('reads views at a storage offset, two tensors sharing one storage (STORED and DEFLATE)', async () => {
    const pkl = stateDictPickle([
      ['head', (p) => p.tensor('FloatStorage', '0', 10, [2, 2], { offset: 0 })],
      ['tail', (p) => p.tensor('FloatStorage', '0', 10, [3, 2], { offset: 4 })],
      ['all', (p) => p.tensor('FloatStorage', '0', 10, [10])],
    ]);
    const data = f32Bytes([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const deflate of [false, true]) {
      const src = bytesSource(ptFile(pkl, { 0: data }, { deflate }));
      const sd = await readTorchStateDict(src, 'shared.pt');
      expect(sd.get('head')!.data).toEqual(new Float32Array([0, 1, 2, 3]));
      expect(sd.get('tail')).toEqual({ dtype: 'F32', shape: [3, 2], data: new Float32Array([4, 5, 6, 7, 8, 9]) });
      expect(sd.get('all')!.data).toEqual(new Float32Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
      // Lazily, one tensor at a time.
      const a = await readTorchArchive(src, 'shared.pt');
      expect(a.tensors.get('tail')).toMatchObject({ storageOffset: 4, stride: [2, 1], storage: { key: '0', numel: 10 } });
      expect((await readTorchTensor(src, a, 'tail')).data).toEqual(new Float32Array([4, 5, 6, 7, 8, 9]));
      await expect(readTorchTensor(src, a, 'nope')).rejects.toThrow(/shared\.pt: no tensor 'nope'/);
    }
  });

  it('materialises non-contiguous views (a transpose, a broadcast) row-major', async () => {
    const pkl = stateDictPickle([
      ['t', (p) => p.tensor('FloatStorage', '0', 6, [3, 2], { stride: [1, 3] })],
      ['x', (p) => p.tensor('LongStorage', '1', 3, [2, 3], { stride: [0, 1] })],
      ['h', (p) => p.tensor('HalfStorage', '2', 4, [2], { offset: 1, stride: [2] })],
    ]);
    const sd = await load(ptFile(pkl, { 0: f32Bytes([1, 2, 3, 4, 5, 6]), 1: i64Bytes([7n, -8n, 9n]), 2: f16Bytes([1, 2, 3, 4]) }));
    expect(sd.get('t')!.data).toEqual(new Float32Array([1, 4, 2, 5, 3, 6]));
    expect(sd.get('x')!.data).toEqual(new BigInt64Array([7n, -8n, 9n, 7n, -8n, 9n]));
    expect(sd.get('h')!.data).toEqual(new Float32Array([2, 4]));
    // A broadcast may not blow a tiny file up into gigabytes.
    const bomb = stateDictPickle([['x', (p) => p.tensor('FloatStorage', '0', 1, [2 ** 20, 2 ** 12], { stride: [0, 0] })]]);
    await expect(load(ptFile(bomb, { 0: f32Bytes([1]) }), 'bomb.pt')).rejects.toThrow(/bomb\.pt: tensor 'x': F32\[1048576, 4096\] is a broadcast view holding 17179869184 bytes/);
  });

  it('accepts an OrderedDict with _metadata (BUILD) and protocol-4 opcodes', async () => {
    const withMeta = stateDictPickle([['w', (p) => p.tensor('FloatStorage', '0', 1, [1])]], true);
    expect((await load(ptFile(withMeta, { 0: f32Bytes([2]) }))).get('w')!.data).toEqual(new Float32Array([2]));

    // FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, TUPLE1/2, LONG1, BINFLOAT, NONE, lists.
    const q = new Pickle().proto(4).frame(200).emptyDict().memoize().mark();
    q.shortStr('w').stackGlobal('torch._utils', '_rebuild_tensor_v2').memoize().mark();
    q.mark().shortStr('storage').stackGlobal('torch', 'FloatStorage').shortStr('k').shortStr('cuda:0').int(4).tuple().persid();
    q.int(1).int(3).tupleN(1).int(1).tupleN(1).bool(false).stackGlobal('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
    q.shortStr('lr').float(0.125).shortStr('big').long(2n ** 70n).shortStr('neg').long(-(2n ** 40n)).shortStr('opt').none();
    q.shortStr('list').emptyList().memoize().mark().int(1).int(-5).int(70000).appends();
    q.setitems().stop();
    const src = bytesSource(ptFile(q.bytes(), { k: f32Bytes([0, 1, 2, 3]) }));
    const a = await readTorchArchive(src, 'p4.pt');
    expect(a.tensors.get('w')).toEqual({ dtype: 'F32', shape: [3], stride: [1], storageOffset: 1, storage: { key: 'k', numel: 4, location: 'cuda:0' } });
    expect([...a.values]).toEqual([['lr', 0.125], ['big', 2n ** 70n], ['neg', -(2 ** 40)], ['opt', null], ['list.0', 1], ['list.1', -5], ['list.2', 70000]]);
    expect((await readTorchTensor(src, a, 'w')).data).toEqual(new Float32Array([1, 2, 3]));
  });

  it('flattens a nested checkpoint with dotted keys, or reads one sub-tree', async () => {
    const p = new Pickle().proto(2).emptyDict().put().mark();
    p.str('state_dict').global('collections', 'OrderedDict').put().emptyTuple().reduce().put().mark();
    p.str('enc.w').tensor('FloatStorage', '0', 2, [2]).str('enc.b').tensor('HalfStorage', '1', 1, [1]);
    p.setitems();
    p.str('epoch').int(3).str('ema').emptyDict().str('enc.w').tensor('FloatStorage', '2', 2, [2]).setitem();
    p.str('optimizer').emptyDict().str('state').emptyDict().int(0).emptyDict().str('step').int(10).setitem().setitem().setitem();
    p.setitems().stop();
    const file = ptFile(p.bytes(), { 0: f32Bytes([1, 2]), 1: f16Bytes([0.5]), 2: f32Bytes([3, 4]) });
    const sd = await load(file, 'ckpt.pth');
    expect([...sd.keys()]).toEqual(['state_dict.enc.w', 'state_dict.enc.b', 'ema.enc.w']);
    expect(sd.get('ema.enc.w')!.data).toEqual(new Float32Array([3, 4]));
    const a = await readTorchArchive(bytesSource(file), 'ckpt.pth');
    expect([...a.values]).toEqual([['epoch', 3], ['optimizer.state.0.step', 10]]);

    const only = await load(file, 'ckpt.pth', 'state_dict');
    expect([...only.keys()]).toEqual(['enc.w', 'enc.b']);
    expect(only.get('enc.b')).toEqual({ dtype: 'F16', shape: [1], data: new Float32Array([0.5]) });
    await expect(load(file, 'ckpt.pth', 'model')).rejects.toThrow(/ckpt\.pth: no 'model' in the checkpoint/);
    await expect(load(file, 'ckpt.pth', 'optimizer.state.0')).resolves.toEqual(new Map());
  });

  it('rejects keys that flatten to the same name', async () => {
    const p = new Pickle().proto(2).emptyDict().mark();
    p.str('a.b').tensor('FloatStorage', '0', 1, [1]).str('a').emptyDict().str('b').int(1).setitem().setitems().stop();
    await expect(load(ptFile(p.bytes(), { 0: f32Bytes([1]) }), 'dup.pt')).rejects.toThrow(/dup\.pt: two entries flatten to the key 'a\.b'/);
  });
});

describe('restricted unpickler', () => {
  /** A pickle that would call `module.name('echo pwned')` if it were trusted. */
  const evil = (module: string, name: string, stack = false) => {
    const p = new Pickle().proto(stack ? 4 : 2);
    if (stack) p.stackGlobal(module, name); else p.global(module, name);
    return p.str('echo pwned').tupleN(1).reduce().stop().bytes();
  };

  it.each([
    ['builtins', 'eval'], ['os', 'system'], ['posix', 'system'], ['__builtin__', 'exec'], ['__main__', 'MyClass'],
    ['torch.nn.modules.linear', 'Linear'], ['subprocess', 'Popen'], ['torch', 'load'], ['collections', 'defaultdict'],
  ])('refuses %s.%s by GLOBAL and STACK_GLOBAL, naming the file and the global', async (module, name) => {
    for (const stack of [false, true]) {
      await expect(load(ptFile(evil(module, name, stack), {}), 'evil.pt')).rejects.toThrow(
        new RegExp(`^evil\\.pt: data\\.pkl: refusing global '${module.replace(/\./g, '\\.')}\\.${name}'`),
      );
    }
  });

  it('refuses a forbidden global even where it is never called, and inside a state dict', async () => {
    const unused = new Pickle().proto(2).global('os', 'system').stop().bytes();
    await expect(load(ptFile(unused, {}), 'evil.pt')).rejects.toThrow(/evil\.pt: data\.pkl: refusing global 'os\.system'/);
    const nested = stateDictPickle([
      ['w', (p) => p.tensor('FloatStorage', '0', 1, [1])],
      ['x', (p) => p.global('builtins', 'eval').str('1').tupleN(1).reduce()],
    ]);
    await expect(load(ptFile(nested, { 0: f32Bytes([1]) }), 'evil.pt')).rejects.toThrow(/refusing global 'builtins\.eval'/);
  });

  it('does not call storage classes, and refuses object-building opcodes', async () => {
    const callStorage = new Pickle().proto(2).global('torch', 'FloatStorage').int(3).tupleN(1).reduce().stop().bytes();
    await expect(load(ptFile(callStorage, {}), 'x.pt')).rejects.toThrow(/x\.pt: data\.pkl: torch\.FloatStorage is not callable/);
    const newobj = new Pickle().proto(2).global('collections', 'OrderedDict').emptyTuple().op(0x81).stop().bytes();
    await expect(load(ptFile(newobj, {}), 'x.pt')).rejects.toThrow(/x\.pt: data\.pkl: unsupported pickle opcode NEWOBJ/);
    const inst = new Pickle().proto(2).mark().op(...new TextEncoder().encode('ios\nsystem\n')).stop().bytes();
    await expect(load(ptFile(inst, {}), 'x.pt')).rejects.toThrow(/unsupported pickle opcode INST/);
    const build = new Pickle().proto(2).emptyList().emptyDict().build().stop().bytes();
    await expect(load(ptFile(build, {}), 'x.pt')).rejects.toThrow(/BUILD of a list/);
    const pid = new Pickle().proto(2).str('x').persid().stop().bytes();
    await expect(load(ptFile(pid, {}), 'x.pt')).rejects.toThrow(/unsupported persistent id "x"/);
    const pidCls = new Pickle().proto(2).mark().str('storage').global('collections', 'OrderedDict').str('0').str('cpu').int(1).tuple().persid().stop().bytes();
    await expect(load(ptFile(pidCls, {}), 'x.pt')).rejects.toThrow(/persistent id names collections\.OrderedDict, not a storage class/);
  });

  it('lists its allowed globals', () => {
    expect(ALLOWED_GLOBALS).toContain('torch._utils._rebuild_tensor_v2');
    expect(ALLOWED_GLOBALS).not.toContain('builtins.eval');
  });

  it('rejects malformed pickles with a clear error', async () => {
    const good = stateDictPickle([['w', (p) => p.tensor('FloatStorage', '0', 1, [1])]]);
    const bad = (pkl: Uint8Array) => load(ptFile(pkl, { 0: f32Bytes([1]) }), 'm.pt');
    await expect(bad(good.subarray(0, good.length - 1))).rejects.toThrow(/m\.pt: data\.pkl: truncated/);
    await expect(bad(good.subarray(0, 40))).rejects.toThrow(/m\.pt: data\.pkl: truncated/);
    await expect(bad(new Pickle().proto(2).op(0x68, 9).stop().bytes())).rejects.toThrow(/memo entry 9 read before it was written/);
    await expect(bad(new Pickle().proto(2).op(0x30).stop().bytes())).rejects.toThrow(/stack underflow/);
    await expect(bad(new Pickle().proto(2).int(1).int(2).stop().bytes())).rejects.toThrow(/STOP with 2 values/);
    await expect(bad(new Pickle().proto(2).op(0xff).stop().bytes())).rejects.toThrow(/unsupported pickle opcode 0xff at offset 2/);
    await expect(bad(new Pickle().proto(2).op(0x58, 0xff, 0xff, 0xff, 0x7f).stop().bytes())).rejects.toThrow(/truncated: string/);
    await expect(bad(new Pickle().proto(1).none().stop().bytes())).rejects.toThrow(/pickle protocol 1 is not supported/);
  });
});

describe('torch archive errors', () => {
  const pkl = stateDictPickle([['w', (p) => p.tensor('FloatStorage', '0', 4, [2, 2])]]);

  it('names a missing storage entry', async () => {
    await expect(load(ptFile(pkl, {}), 'gone.pt')).rejects.toThrow(/gone\.pt: tensor 'w': missing storage entry 'archive\/data\/0'/);
  });

  it('rejects a storage of the wrong size and a view past its storage', async () => {
    await expect(load(ptFile(pkl, { 0: f32Bytes([1, 2, 3]) }), 's.pt')).rejects.toThrow(/s\.pt: tensor 'w': storage '0' has 12 bytes, but 4 F32 elements need 16/);
    const past = stateDictPickle([['w', (p) => p.tensor('FloatStorage', '0', 4, [2, 2], { offset: 1 })]]);
    await expect(load(ptFile(past, { 0: f32Bytes([1, 2, 3, 4]) }), 's.pt')).rejects.toThrow(/s\.pt: tensor 'w': offset 1, shape \[2,2\] and stride \[2,1\] reach element 4 of a 4-element storage/);
    const mixed = stateDictPickle([['a', (p) => p.tensor('FloatStorage', '0', 2, [2])], ['b', (p) => p.tensor('IntStorage', '0', 2, [2])]]);
    await expect(load(ptFile(mixed, { 0: f32Bytes([1, 2]) }), 's.pt')).rejects.toThrow(/storage '0' is used as both F32 and I32/);
  });

  it('rejects non-torch zips, big-endian archives and truncated files', async () => {
    await expect(load(writeZip([{ name: 'x/readme', data: new Uint8Array(1) }]), 'plain.zip')).rejects.toThrow(/plain\.zip: no data\.pkl in the zip/);
    await expect(load(ptFile(pkl, { 0: f32Bytes([1, 2, 3, 4]) }, { extra: [{ name: 'archive/byteorder', data: new TextEncoder().encode('big') }] }), 'be.pt'))
      .rejects.toThrow(/be\.pt: byteorder is 'big'/);
    const le = await load(ptFile(pkl, { 0: f32Bytes([1, 2, 3, 4]) }, { extra: [{ name: 'archive/byteorder', data: new TextEncoder().encode('little') }] }));
    expect(le.get('w')!.data).toEqual(new Float32Array([1, 2, 3, 4]));
    const file = ptFile(pkl, { 0: f32Bytes([1, 2, 3, 4]) });
    for (const cut of [1, 30, 100, file.length - 40]) {
      await expect(load(file.subarray(0, file.length - cut), 'cut.pt')).rejects.toThrow(/^cut\.pt: /);
    }
    await expect(load(new Uint8Array(0), 'empty.pt')).rejects.toThrow(/empty\.pt: not a zip archive/);
    // A legacy (pre-1.6) torch.save file is a bare pickle, not a zip.
    await expect(load(new Pickle().proto(2).int(0x1950a86a).stop().bytes(), 'legacy.pt')).rejects.toThrow(/legacy\.pt: not a zip archive/);
  });

  it('reads only the bytes it needs from a source', async () => {
    const file = ptFile(stateDictPickle([['w', (p) => p.tensor('FloatStorage', '0', 1000, [10], { offset: 500 })]]), { 0: f32Bytes(Array.from({ length: 1000 }, (_, i) => i)) });
    const inner = bytesSource(file);
    const reads: number[] = [];
    const src: ByteSource = { size: inner.size, read: (o, n) => { reads.push(n); return inner.read(o, n); } };
    const sd = await readTorchStateDict(src, 'lazy.pt');
    expect(sd.get('w')!.data).toEqual(new Float32Array([500, 501, 502, 503, 504, 505, 506, 507, 508, 509]));
    // The first read scans the tail for the end record (the whole of so small a file); no other read
    // touches the 4000-byte storage beyond the tensor's 40 bytes.
    expect(reads[0]).toBe(file.length);
    expect(reads.slice(1).reduce((a, b) => a + b, 0)).toBeLessThan(1000);
    expect(reads).toContain(40);
  });
});

describe('real torch.save files (torch 1.13, fixtures/make-torch-pt.py)', () => {
  const dir = join(__dirname, 'fixtures');
  const ramp = (n: number) => Array.from({ length: n }, (_, i) => i * 0.25 - 1.5);

  it.skipIf(!existsSync(join(dir, 'torch-1.13-state-dict.pt')))('loads a mixed-dtype state dict with exact values', async () => {
    const sd = await load(readFileSync(join(dir, 'torch-1.13-state-dict.pt')), 'torch-1.13-state-dict.pt');
    const f = (k: string) => sd.get(k)!;
    expect(f('w32')).toEqual({ dtype: 'F32', shape: [2, 3, 4], data: new Float32Array(ramp(24)) });
    expect(f('w16')).toEqual({ dtype: 'F16', shape: [3, 2], data: new Float32Array(ramp(6)) });
    expect(f('wbf')).toEqual({ dtype: 'BF16', shape: [5], data: new Float32Array(ramp(5)) });
    expect(f('w64')).toEqual({ dtype: 'F64', shape: [2, 2], data: new Float32Array(ramp(4)) });
    expect(f('idx')).toEqual({ dtype: 'I64', shape: [4], data: new BigInt64Array([-3n, 0n, 2n ** 40n, 7n]) });
    expect(f('i32')).toEqual({ dtype: 'I32', shape: [2, 2], data: new Int32Array([1, -2, 3, 2 ** 31 - 1]) });
    expect(f('mask')).toEqual({ dtype: 'BOOL', shape: [3], data: new Uint8Array([1, 0, 1]) });
    expect(f('u8')).toEqual({ dtype: 'U8', shape: [3], data: new Uint8Array([0, 255, 7]) });
    expect(f('scalar')).toEqual({ dtype: 'F32', shape: [], data: new Float32Array([3.5]) });
    expect(f('empty')).toEqual({ dtype: 'F32', shape: [0, 3], data: new Float32Array(0) });
    expect(f('view')).toEqual({ dtype: 'F32', shape: [2, 3], data: new Float32Array(ramp(12).slice(4, 10)) });
    expect(f('base')).toEqual({ dtype: 'F32', shape: [12], data: new Float32Array(ramp(12)) });
    expect(f('param')).toEqual({ dtype: 'F32', shape: [3], data: new Float32Array(ramp(3)) });
    const r = ramp(6);
    expect(f('t')).toEqual({ dtype: 'F32', shape: [3, 2], data: new Float32Array([r[0]!, r[3]!, r[1]!, r[4]!, r[2]!, r[5]!]) });
  });

  it.skipIf(!existsSync(join(dir, 'torch-1.13-checkpoint.pt')))('loads a module state dict nested in a checkpoint', async () => {
    const name = 'torch-1.13-checkpoint.pt';
    const src = bytesSource(readFileSync(join(dir, name)));
    const a = await readTorchArchive(src, name);
    expect(a.prefix).toBe('torch-1.13-checkpoint');
    expect([...a.values]).toEqual([['epoch', 3], ['name', 'tiny']]);
    const sd = await readTorchStateDict(src, name, { root: 'state_dict' });
    const expected = readFileSync(join(dir, 'torch-1.13-checkpoint.expected.txt'), 'utf8').trim().split('\n');
    expect([...sd.keys()]).toEqual(expected.map((l) => l.split(' ')[0]));
    for (const line of expected) {
      const [key, dtype, shape, ...vals] = line.replace(/\[(.*?)\]/, (_, s: string) => s.replace(/ /g, '') || '-').split(' ');
      const t = sd.get(key!)!;
      expect(t.shape.join(',') || '-').toBe(shape);
      if (dtype === 'torch.int64') expect(t.data).toEqual(new BigInt64Array(vals.map(BigInt)));
      else expect(t.data).toEqual(new Float32Array(vals.map(Number)));
    }
  });
});
