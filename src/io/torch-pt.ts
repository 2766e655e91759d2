/**
 * PyTorch `.pt`/`.pth` checkpoints (the zip format `torch.save` writes since PyTorch 1.6), host side.
 *
 * The archive holds `<prefix>/data.pkl` (a pickle), `<prefix>/data/<key>` (one raw little-endian
 * storage per key), `<prefix>/version` and optionally `<prefix>/byteorder`. The pickle is read by a
 * RESTRICTED unpickler in the spirit of `torch.load(weights_only=True)`: it implements only the
 * opcodes a state dict uses and resolves only an allowlist of globals (`ALLOWED_GLOBALS`). Any other
 * global (`builtins.eval`, `os.system`, a user class) is refused when the GLOBAL/STACK_GLOBAL opcode
 * names it, before anything could call it; nothing is ever executed, the allowed callables are
 * interpreted by this module.
 *
 * Nested containers are flattened with dotted keys: `{'state_dict': {'w': t}, 'epoch': 3}` gives the
 * tensor `state_dict.w` (list/tuple items use their index, `layers.0`). Pass `root: 'state_dict'` to
 * take one sub-tree (keys are then relative to it). Non-tensor leaves (`epoch`) are in
 * `TorchArchive.values`. Legacy (pre-1.6, non-zip) and TorchScript archives are not supported.
 */
import { ReefError } from '../gpu/errors.js';
import { DTYPE_BYTES, decodeTensor, type ByteSource, type Dtype, type HostTensor } from './safetensors.js';
import { readZipDirectory, readZipEntry, readZipEntryRange, type ZipArchive, type ZipEntry } from './zip.js';

/** `module.name` → the dtype of the storage class (or a callable's role). */
const STORAGE_DTYPES: Readonly<Record<string, Dtype>> = {
  'torch.DoubleStorage': 'F64',
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.LongStorage': 'I64',
  'torch.IntStorage': 'I32',
  'torch.ShortStorage': 'I16',
  'torch.CharStorage': 'I8',
  'torch.ByteStorage': 'U8',
  'torch.BoolStorage': 'BOOL',
  // Bytes without a dtype: a tensor on it reads as U8.
  'torch.UntypedStorage': 'U8',
  'torch.storage.UntypedStorage': 'U8',
};

const CALLABLES = [
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
] as const;

/** A view may hold more bytes than its storage (a stride-0 broadcast) only up to this size. */
export const MAX_BROADCAST_BYTES = 64 * 1024 * 1024;

/** Every global the unpickler resolves; anything else is refused. */
export const ALLOWED_GLOBALS: readonly string[] = [...CALLABLES, ...Object.keys(STORAGE_DTYPES)];
const ALLOWED = new Set(ALLOWED_GLOBALS);

/** Where a tensor's elements are: a view into one storage (`data/<key>`). */
export interface TorchTensorInfo {
  dtype: Dtype;
  shape: number[];
  /** In elements, as torch's; row-major contiguous tensors have the usual strides. */
  stride: number[];
  /** In elements. */
  storageOffset: number;
  /** The storage's key (its entry is `<prefix>/data/<key>`) and element count. */
  storage: { key: string; numel: number; location: string };
}

/** A non-tensor leaf of the checkpoint (`epoch: 3`). Bytes (`BINBYTES`) come back as Uint8Array. */
export type TorchValue = number | bigint | string | boolean | null | Uint8Array;

export interface TorchArchive {
  name: string;
  /** The archive's top folder: entries are `<prefix>/data.pkl`, `<prefix>/data/<key>`. */
  prefix: string;
  zip: ZipArchive;
  /** By dotted key, in pickle order. */
  tensors: Map<string, TorchTensorInfo>;
  /** Non-tensor leaves by dotted key (empty containers are left out). */
  values: Map<string, TorchValue>;
}

export interface TorchReadOptions {
  /** A dotted path to the sub-tree to read (`'state_dict'`, `'model.ema'`); default the whole pickle. */
  root?: string;
}

/** Reads the zip directory and unpickles `data.pkl`; reads no tensor data. */
export async function readTorchArchive(src: ByteSource, name = 'input', opts: TorchReadOptions = {}): Promise<TorchArchive> {
  const fail = (msg: string) => new ReefError(`${name}: ${msg}`);
  const zip = await readZipDirectory(src, name);
  const pkls = [...zip.entries.keys()].filter((k) => k === 'data.pkl' || k.endsWith('/data.pkl'));
  if (pkls.length === 0) {
    throw fail('no data.pkl in the zip: not a torch.save archive (legacy pre-1.6 .pt files are not supported)');
  }
  if (pkls.length > 1) throw fail(`several data.pkl entries (${pkls.slice(0, 4).join(', ')}): not a torch.save state dict archive`);
  const pkl = pkls[0]!;
  const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length).replace(/\/$/, '');
  const at = (rest: string) => (prefix ? `${prefix}/${rest}` : rest);

  const byteorder = zip.entries.get(at('byteorder'));
  if (byteorder) {
    const order = new TextDecoder().decode(await readZipEntry(src, zip, byteorder)).trim();
    if (order !== 'little') throw fail(`byteorder is '${order.slice(0, 20)}': only little-endian checkpoints are supported`);
  }

  const root = unpickle(await readZipEntry(src, zip, pkl), name);
  let node: unknown = root;
  if (opts.root !== undefined) {
    for (const part of opts.root.split('.')) {
      const next = node instanceof PyDict ? node.get(part) : Array.isArray(node) || node instanceof Tuple ? items(node)[Number(part)] : undefined;
      if (next === undefined) throw fail(`no '${opts.root}' in the checkpoint (at '${part}')`);
      node = next;
    }
  }

  const tensors = new Map<string, TorchTensorInfo>();
  const values = new Map<string, TorchValue>();
  const storages = new Map<string, Dtype>();
  const visiting = new Set<unknown>();
  const add = (key: string) => {
    if (tensors.has(key) || values.has(key)) throw fail(`two entries flatten to the key '${key}'`);
  };
  const walk = (v: unknown, key: string) => {
    if (v instanceof TensorRef) {
      add(key);
      const s = v.storage;
      const seen = storages.get(s.key);
      if (seen !== undefined && seen !== s.dtype) throw fail(`storage '${s.key}' is used as both ${seen} and ${s.dtype}`);
      storages.set(s.key, s.dtype);
      const entry = zip.entries.get(at(`data/${s.key}`));
      if (!entry) throw fail(`tensor '${key}': missing storage entry '${at(`data/${s.key}`)}' in the zip`);
      const need = s.numel * DTYPE_BYTES[s.dtype];
      if (entry.size !== need) throw fail(`tensor '${key}': storage '${s.key}' has ${entry.size} bytes, but ${s.numel} ${s.dtype} elements need ${need}`);
      tensors.set(key, { dtype: s.dtype, shape: v.shape, stride: v.stride, storageOffset: v.offset, storage: { key: s.key, numel: s.numel, location: s.location } });
      return;
    }
    const children = v instanceof PyDict ? [...v.map] : Array.isArray(v) || v instanceof Tuple ? items(v).map((x, i) => [i, x] as const) : undefined;
    if (children) {
      if (visiting.has(v)) throw fail(`the checkpoint contains itself at '${key}'`);
      visiting.add(v);
      for (const [k, child] of children) walk(child, key === '' ? String(k) : `${key}.${String(k)}`);
      visiting.delete(v);
      return;
    }
    if (v === null || ['number', 'bigint', 'string', 'boolean'].includes(typeof v) || v instanceof Uint8Array) {
      add(key);
      values.set(key, v as TorchValue);
    }
    // Globals (a storage class as a value) are skipped: they are not data.
  };
  walk(node, '');
  // Every tensor must fit its storage, and a broadcast (stride-0) view may not amplify a small file
  // into more than MAX_BROADCAST_BYTES.
  for (const [key, t] of tensors) {
    if (t.shape.some((d) => d === 0)) continue;
    const bytes = numelOf(t.shape) * DTYPE_BYTES[t.dtype];
    if (bytes > t.storage.numel * DTYPE_BYTES[t.dtype] && bytes > MAX_BROADCAST_BYTES) {
      throw fail(`tensor '${key}': ${t.dtype}[${t.shape.join(', ')}] is a broadcast view holding ${bytes} bytes of a ${t.storage.numel}-element storage (limit ${MAX_BROADCAST_BYTES})`);
    }
    const last = t.storageOffset + t.shape.reduce((s, d, i) => s + (d - 1) * t.stride[i]!, 0);
    if (last >= t.storage.numel) {
      throw fail(`tensor '${key}': offset ${t.storageOffset}, shape [${t.shape}] and stride [${t.stride}] reach element ${last} of a ${t.storage.numel}-element storage`);
    }
  }
  return { name, prefix, zip, tensors, values };
}

/** One tensor, decoded as `decodeTensor` does (floats as f32, BOOL as U8); non-contiguous views are materialised row-major. */
export async function readTorchTensor(src: ByteSource, archive: TorchArchive, key: string): Promise<HostTensor> {
  const t = archive.tensors.get(key);
  if (!t) throw new ReefError(`${archive.name}: no tensor '${key}'`);
  return { dtype: t.dtype, shape: [...t.shape], data: decodeTensor(t.dtype, await tensorBytes(src, archive, t, new Map())) };
}

/** Every tensor in the checkpoint (or under `opts.root`), decoded; keys are dotted paths. */
export async function readTorchStateDict(src: ByteSource, name = 'input', opts: TorchReadOptions = {}): Promise<Map<string, HostTensor>> {
  const archive = await readTorchArchive(src, name, opts);
  const cache = new Map<string, Promise<Uint8Array>>();
  const out = new Map<string, HostTensor>();
  for (const [key, t] of archive.tensors) {
    out.set(key, { dtype: t.dtype, shape: [...t.shape], data: decodeTensor(t.dtype, await tensorBytes(src, archive, t, cache)) });
  }
  return out;
}

const numelOf = (shape: readonly number[]) => shape.reduce((p, d) => p * d, 1);

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) return false;
    expect *= shape[i]!;
  }
  return true;
}

/** The tensor's bytes, row-major. `cache` keeps whole DEFLATE storages within one call. */
async function tensorBytes(src: ByteSource, a: TorchArchive, t: TorchTensorInfo, cache: Map<string, Promise<Uint8Array>>): Promise<Uint8Array> {
  const es = DTYPE_BYTES[t.dtype];
  const n = numelOf(t.shape);
  const entry = a.zip.entries.get(a.prefix ? `${a.prefix}/data/${t.storage.key}` : `data/${t.storage.key}`) as ZipEntry;
  if (n === 0) return new Uint8Array(0);
  if (isContiguous(t.shape, t.stride)) {
    // The whole storage: read with its CRC checked. A part of a STORED one: only that range.
    if (t.storageOffset === 0 && n === t.storage.numel) return readZipEntry(src, a.zip, entry);
    if (entry.method === 0) return readZipEntryRange(src, a.zip, entry, t.storageOffset * es, n * es);
  }
  let whole = cache.get(entry.name);
  if (!whole) {
    whole = readZipEntry(src, a.zip, entry);
    if (entry.method !== 0 || !isContiguous(t.shape, t.stride)) cache.set(entry.name, whole);
  }
  const storage = await whole;
  if (isContiguous(t.shape, t.stride)) return storage.subarray(t.storageOffset * es, (t.storageOffset + n) * es);
  return gather(storage, es, t, n);
}

/** Copies a strided view row-major, element by element (as 1, 2 or 4-byte words, so NaN bits survive). */
function gather(storage: Uint8Array, es: number, t: TorchTensorInfo, n: number): Uint8Array {
  const word = Math.min(es, 4);
  const per = es / word;
  const src8 = storage.byteOffset % word === 0 ? storage : storage.slice();
  const out = new Uint8Array(n * es);
  const C = word === 1 ? Uint8Array : word === 2 ? Uint16Array : Uint32Array;
  const from = new C(src8.buffer as ArrayBuffer, src8.byteOffset, src8.byteLength / word);
  const to = new C(out.buffer, 0, out.byteLength / word);
  const rank = t.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let off = t.storageOffset;
  for (let i = 0; i < n; i++) {
    for (let w = 0; w < per; w++) to[i * per + w] = from[off * per + w]!;
    // Odometer over the shape, last dim fastest.
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      off += t.stride[d]!;
      if (idx[d]! < t.shape[d]!) break;
      off -= idx[d]! * t.stride[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The restricted unpickler

class Tuple {
  constructor(readonly items: unknown[]) {}
}
type DictKey = string | number | bigint | boolean | null;
class PyDict {
  readonly map = new Map<DictKey, unknown>();
  get(k: string): unknown {
    if (this.map.has(k)) return this.map.get(k);
    // Integer keys (optimizer state) are reachable by their decimal text.
    for (const [key, v] of this.map) if (typeof key !== 'string' && String(key) === k) return v;
    return undefined;
  }
}
class Global {
  constructor(readonly path: string) {}
}
class StorageRef {
  constructor(readonly key: string, readonly dtype: Dtype, readonly location: string, readonly numel: number) {}
}
class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
}
const MARK = Symbol('mark');

const items = (v: unknown[] | Tuple) => (v instanceof Tuple ? v.items : v);

/** A Python value named for an error message. */
function describe(v: unknown): string {
  if (v === MARK) return 'MARK';
  if (v === null) return 'None';
  if (v instanceof Global) return v.path;
  if (v instanceof Tuple) return 'tuple';
  if (v instanceof PyDict) return 'dict';
  if (v instanceof TensorRef) return 'tensor';
  if (v instanceof StorageRef) return 'storage';
  if (Array.isArray(v)) return 'list';
  if (v instanceof Uint8Array) return 'bytes';
  return typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v) : String(v);
}

const OPNAMES: Record<number, string> = {
  0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL', 0x52: 'REDUCE', 0x62: 'BUILD', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX',
  0x69: 'INST', 0x6f: 'OBJ', 0x50: 'PERSID', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
};

/**
 * Unpickles `bytes` (protocols 2-5) into plain values: str → string, int → number (bigint when past
 * 2^53), float → number, tuple → Tuple, list → array, dict/OrderedDict → PyDict, tensors → TensorRef.
 */
function unpickle(bytes: Uint8Array, name: string): unknown {
  const fail = (msg: string) => new ReefError(`${name}: data.pkl: ${msg}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let stack: unknown[] = [];
  const marks: unknown[][] = [];
  const memo = new Map<number, unknown>();
  let p = 0;

  const need = (n: number, what: string) => {
    if (n > bytes.length - p) throw fail(`truncated: ${what} at offset ${p} needs ${n} bytes, ${bytes.length - p} left`);
  };
  const u8 = () => (need(1, 'byte'), bytes[p++]!);
  const u16 = () => (need(2, 'u16'), (p += 2), view.getUint16(p - 2, true));
  const u32 = () => (need(4, 'u32'), (p += 4), view.getUint32(p - 4, true));
  const i32 = () => (need(4, 'i32'), (p += 4), view.getInt32(p - 4, true));
  const u64 = (what: string) => {
    need(8, what);
    const v = view.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(bytes.length)) throw fail(`${what} of ${v} bytes at offset ${p - 8} reaches past the end of the pickle`);
    return Number(v);
  };
  const take = (n: number, what: string) => {
    need(n, what);
    p += n;
    return bytes.subarray(p - n, p);
  };
  const str = (n: number) => {
    try {
      return utf8.decode(take(n, 'string'));
    } catch (e) {
      if (e instanceof ReefError) throw e;
      throw fail(`string at offset ${p - n} is not valid UTF-8`);
    }
  };
  const latin1 = (b: Uint8Array) => Array.from(b, (c) => String.fromCharCode(c)).join('');
  const line = () => {
    const end = bytes.indexOf(0x0a, p);
    if (end < 0) throw fail(`truncated: no newline after offset ${p}`);
    const s = latin1(bytes.subarray(p, end));
    p = end + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0) throw fail(`stack underflow at offset ${p - 1}`);
    const v = stack.pop();
    if (v === MARK) throw fail(`unexpected MARK at offset ${p - 1}`);
    return v;
  };
  const top = () => {
    const v = stack[stack.length - 1];
    if (stack.length === 0 || v === MARK) throw fail(`stack underflow at offset ${p - 1}`);
    return v;
  };
  const popMark = () => {
    const items = stack;
    const prev = marks.pop();
    if (!prev) throw fail(`no MARK to pop at offset ${p - 1}`);
    stack = prev;
    return items;
  };
  const int = (v: bigint) => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
  const long = (b: Uint8Array) => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return int(v);
  };
  const global = (module: string, qual: string) => {
    const path = `${module}.${qual}`;
    if (!ALLOWED.has(path)) {
      throw fail(`refusing global '${path}': only tensor state dicts can be loaded (allowed globals: ${ALLOWED_GLOBALS.join(', ')})`);
    }
    return new Global(path);
  };
  const setItem = (d: unknown, k: unknown, v: unknown) => {
    if (!(d instanceof PyDict)) throw fail(`SETITEM on a ${describe(d)}, not a dict`);
    if (!(k === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof k))) throw fail(`unsupported dict key ${describe(k)}`);
    d.map.set(k as DictKey, v);
  };
  const memoGet = (i: number) => {
    if (!memo.has(i)) throw fail(`memo entry ${i} read before it was written`);
    return memo.get(i);
  };
  const memoPut = (i: number) => {
    memo.set(i, top());
  };

  for (;;) {
    const opAt = p;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v < 2 || v > 5) throw fail(`pickle protocol ${v} is not supported (2 to 5)`);
        break;
      }
      case 0x95: take(8, 'FRAME'); break; // FRAME: a length hint; the data follows inline
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length) throw fail(`STOP with ${stack.length} values on the stack and ${marks.length} open MARKs`);
        return stack[0];
      }
      case 0x28: marks.push(stack); stack = []; break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(new Tuple([])); break; // EMPTY_TUPLE
      case 0x74: { const t = new Tuple(popMark()); stack.push(t); break; } // TUPLE (popMark first: it swaps `stack`)
      case 0x85: stack.push(new Tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(new Tuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(new Tuple([a, b, c])); break; } // TUPLE3
      case 0x6c: { const l = popMark(); stack.push(l); break; } // LIST
      case 0x64: { // DICT
        const kv = popMark();
        if (kv.length % 2) throw fail('DICT with an odd number of items');
        const d = new PyDict();
        for (let i = 0; i < kv.length; i += 2) setItem(d, kv[i], kv[i + 1]);
        stack.push(d);
        break;
      }
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8d: stack.push(str(u64('BINUNICODE8'))); break; // BINUNICODE8
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x54: { const n = i32(); if (n < 0) throw fail('negative BINSTRING length'); stack.push(latin1(take(n, 'BINSTRING'))); break; }
      case 0x55: stack.push(latin1(take(u8(), 'SHORT_BINSTRING'))); break;
      case 0x42: stack.push(take(u32(), 'BINBYTES').slice()); break; // BINBYTES
      case 0x43: stack.push(take(u8(), 'SHORT_BINBYTES').slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(take(u64('BINBYTES8'), 'BINBYTES8').slice()); break; // BINBYTES8
      case 0x71: memoPut(u8()); break; // BINPUT
      case 0x72: memoPut(u32()); break; // LONG_BINPUT
      case 0x94: memoPut(memo.size); break; // MEMOIZE
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(long(take(u8(), 'LONG1'))); break; // LONG1
      case 0x8b: { // LONG4
        const n = i32();
        if (n < 0 || n > 1024) throw fail(`LONG4 of ${n} bytes is not supported`);
        stack.push(long(take(n, 'LONG4')));
        break;
      }
      case 0x47: need(8, 'BINFLOAT'); stack.push(view.getFloat64(p, false)); p += 8; break; // BINFLOAT (big-endian)
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4e: stack.push(null); break; // NONE
      case 0x73: { const v = pop(); const k = pop(); setItem(top(), k, v); break; } // SETITEM
      case 0x75: { // SETITEMS
        const kv = popMark();
        if (kv.length % 2) throw fail('SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < kv.length; i += 2) setItem(d, kv[i], kv[i + 1]);
        break;
      }
      case 0x61: { const v = pop(); const l = top(); if (!Array.isArray(l)) throw fail(`APPEND to a ${describe(l)}`); l.push(v); break; } // APPEND
      case 0x65: { // APPENDS
        const vs = popMark();
        const l = top();
        if (!Array.isArray(l)) throw fail(`APPENDS to a ${describe(l)}`);
        for (const v of vs) l.push(v);
        break;
      }
      case 0x63: { const module = line(); stack.push(global(module, line())); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const qual = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof qual !== 'string') throw fail('STACK_GLOBAL needs two strings');
        stack.push(global(module, qual));
        break;
      }
      case 0x51: stack.push(persistentLoad(pop(), fail)); break; // BINPERSID
      case 0x52: { const args = pop(); const f = pop(); stack.push(call(f, args, fail)); break; } // REDUCE
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        // OrderedDict state: its __dict__ ({'_metadata': ...}), accepted and dropped.
        if (obj instanceof PyDict && (state instanceof PyDict || state === null)) break;
        // A parameter's state from _rebuild_parameter_with_state is passed as an argument, not built.
        throw fail(`BUILD of a ${describe(obj)} with a ${describe(state)} state is not supported`);
      }
      default: {
        const known = OPNAMES[op];
        throw fail(`unsupported pickle opcode ${known ?? `0x${op.toString(16).padStart(2, '0')}`} at offset ${opAt}` +
          (known ? ' (not used by tensor state dicts)' : ''));
      }
    }
  }
}

function persistentLoad(pid: unknown, fail: (msg: string) => ReefError): StorageRef {
  const t = pid instanceof Tuple ? pid.items : undefined;
  if (!t || t.length !== 5 || t[0] !== 'storage') throw fail(`unsupported persistent id ${describe(pid)} (expected ('storage', type, key, location, numel))`);
  const [, type, key, location, numel] = t;
  if (!(type instanceof Global) || !Object.hasOwn(STORAGE_DTYPES, type.path)) throw fail(`persistent id names ${describe(type)}, not a storage class`);
  if (typeof key !== 'string' || typeof location !== 'string') throw fail('persistent id key and location must be strings');
  if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) throw fail(`storage '${key}' has a bad size ${describe(numel)}`);
  return new StorageRef(key, STORAGE_DTYPES[type.path]!, location, numel);
}

function dims(v: unknown, what: string, fail: (msg: string) => ReefError): number[] {
  const xs = v instanceof Tuple ? v.items : Array.isArray(v) ? v : undefined;
  if (!xs || !xs.every((d): d is number => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw fail(`tensor ${what} must be a tuple of non-negative integers, not ${describe(v)}`);
  }
  return xs.map((d) => d + 0);
}

/** REDUCE: only the allowlisted callables, interpreted here. */
function call(f: unknown, args: unknown, fail: (msg: string) => ReefError): unknown {
  if (!(f instanceof Global)) throw fail(`REDUCE of a ${describe(f)}, not a callable`);
  if (!(args instanceof Tuple)) throw fail(`REDUCE of ${f.path} with ${describe(args)} arguments, not a tuple`);
  const a = args.items;
  switch (f.path) {
    case 'collections.OrderedDict': {
      const d = new PyDict();
      if (a.length === 0) return d;
      const pairs = a.length === 1 && (Array.isArray(a[0]) || a[0] instanceof Tuple) ? items(a[0] as unknown[] | Tuple) : undefined;
      if (!pairs) throw fail('collections.OrderedDict called with unsupported arguments');
      for (const kv of pairs) {
        if (!(kv instanceof Tuple) || kv.items.length !== 2) throw fail('collections.OrderedDict items must be (key, value) pairs');
        const [k, v] = kv.items;
        if (!(k === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof k))) throw fail(`unsupported dict key ${describe(k)}`);
        d.map.set(k as DictKey, v);
      }
      return d;
    }
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2': {
      const min = f.path.endsWith('_v2') ? 6 : 4;
      if (a.length < min || a.length > min + 1) throw fail(`${f.path} called with ${a.length} arguments`);
      const [storage, offset, size, stride] = a;
      if (!(storage instanceof StorageRef)) throw fail(`${f.path} called on a ${describe(storage)}, not a storage`);
      if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw fail(`tensor storage offset ${describe(offset)} is not a non-negative integer`);
      const shape = dims(size, 'size', fail);
      const strides = dims(stride, 'stride', fail);
      if (strides.length !== shape.length) throw fail(`tensor size [${shape}] and stride [${strides}] differ in rank`);
      if (shape.reduce((p, d) => p * d, 1) > Number.MAX_SAFE_INTEGER) throw fail(`tensor size [${shape}] is too large`);
      return new TensorRef(storage, offset, shape, strides);
    }
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state': {
      if (!(a[0] instanceof TensorRef)) throw fail(`${f.path} called on a ${describe(a[0])}, not a tensor`);
      return a[0];
    }
    default:
      throw fail(`${f.path} is not callable`);
  }
}
