/**
 * A minimal, read-only zip reader over a random-access `ByteSource` (enough for `torch.save` archives).
 *
 * It reads the end-of-central-directory record (and the ZIP64 locator and record, which large
 * checkpoints carry), the central directory, and each entry's local header; entries are STORED or
 * DEFLATE. The archive is treated as hostile: every offset and size is checked against the file size
 * before anything is read or allocated from it, and errors name the file. Not supported: encryption,
 * multi-disk archives, compression methods other than 0 and 8.
 */
import { inflateSync } from 'fflate';
import { ReefError } from '../gpu/errors.js';
import { crc32 } from './crc32.js';
import type { ByteSource } from './safetensors.js';

export { crc32 };

export interface ZipEntry {
  /** The name as stored (UTF-8 if the entry says so, else CP437 read as Latin-1; ASCII in practice). */
  name: string;
  /** 0 = STORED, 8 = DEFLATE. */
  method: number;
  /** Bytes in the archive (after the local header). */
  compressedSize: number;
  /** Bytes once extracted. */
  size: number;
  crc32: number;
  /** Absolute offset of the local file header. */
  localHeaderOffset: number;
}

export interface ZipArchive {
  /** The source's name (a path, a URL), used in error messages. */
  name: string;
  /** By name; a Map, so names like `__proto__` are plain keys. */
  entries: Map<string, ZipEntry>;
  /** True when the archive carries ZIP64 end records. */
  zip64: boolean;
}

const EOCD_SIG = 0x06054b50;
const EOCD64_SIG = 0x06064b50;
const LOCATOR64_SIG = 0x07064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const EOCD_BYTES = 22;
const LOCATOR64_BYTES = 20;
const EOCD64_BYTES = 56;
const CENTRAL_BYTES = 46;
const LOCAL_BYTES = 30;
const MAX_COMMENT = 0xffff;
/** DEFLATE cannot expand by more than about 1032:1; a larger claimed ratio is a lie or a bomb. */
const MAX_DEFLATE_RATIO = 1032;

async function readExact(src: ByteSource, offset: number, length: number, name: string): Promise<Uint8Array> {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > src.size) {
    throw new ReefError(`${name}: zip read of ${length} bytes at offset ${offset} is outside the ${src.size}-byte file (truncated or corrupt?)`);
  }
  const bytes = await src.read(offset, length);
  if (bytes.byteLength !== length) {
    throw new ReefError(`${name}: read of ${length} bytes at offset ${offset} returned ${bytes.byteLength} (did the file change?)`);
  }
  return bytes;
}

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** A u64 as a number, or an error if it is past 2^53 (no real file is that large). */
function u64(view: DataView, at: number, what: string, name: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ReefError(`${name}: zip ${what} ${v} is too large`);
  return Number(v);
}

/** Reads and validates the central directory; reads no entry data. */
export async function readZipDirectory(src: ByteSource, name = 'input'): Promise<ZipArchive> {
  const fail = (msg: string) => new ReefError(`${name}: ${msg}`);
  if (src.size < EOCD_BYTES) throw fail(`not a zip archive: ${src.size} bytes, shorter than an end-of-central-directory record`);

  // The EOCD record is the last 22 bytes plus a comment of up to 65535 bytes: scan back for it.
  const tailLen = Math.min(src.size, EOCD_BYTES + MAX_COMMENT);
  const tailStart = src.size - tailLen;
  const tail = await readExact(src, tailStart, tailLen, name);
  const tv = dv(tail);
  let eocd = -1;
  for (let i = tailLen - EOCD_BYTES; i >= 0; i--) {
    // The comment must end exactly at the end of the file, which rules out a signature inside a comment.
    if (tv.getUint32(i, true) === EOCD_SIG && i + EOCD_BYTES + tv.getUint16(i + 20, true) === tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw fail('not a zip archive (no end-of-central-directory record; truncated?)');

  const disk = tv.getUint16(eocd + 4, true);
  const cdDisk = tv.getUint16(eocd + 6, true);
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  const eocdAbs = tailStart + eocd;

  // ZIP64: a locator sits right before the EOCD record and points at the ZIP64 EOCD record.
  let zip64 = false;
  let cdEnd = eocdAbs; // the central directory must end before the (ZIP64) end records
  if (eocdAbs >= LOCATOR64_BYTES) {
    const loc = dv(await readExact(src, eocdAbs - LOCATOR64_BYTES, LOCATOR64_BYTES, name));
    if (loc.getUint32(0, true) === LOCATOR64_SIG) {
      zip64 = true;
      const at = u64(loc, 8, 'ZIP64 end record offset', name);
      if (at + EOCD64_BYTES > eocdAbs - LOCATOR64_BYTES) {
        throw fail(`ZIP64 end-of-central-directory offset ${at} is outside the file (truncated or corrupt?)`);
      }
      const rec = dv(await readExact(src, at, EOCD64_BYTES, name));
      if (rec.getUint32(0, true) !== EOCD64_SIG) throw fail(`no ZIP64 end-of-central-directory record at offset ${at} (corrupt?)`);
      if (rec.getUint32(16, true) !== 0 || rec.getUint32(20, true) !== 0) throw fail('multi-disk zip archives are not supported');
      count = u64(rec, 32, 'entry count', name);
      cdSize = u64(rec, 40, 'central directory size', name);
      cdOffset = u64(rec, 48, 'central directory offset', name);
      cdEnd = at;
    }
  }
  if (!zip64 && (disk !== 0 || cdDisk !== 0)) throw fail('multi-disk zip archives are not supported');
  if (cdOffset + cdSize > cdEnd) {
    throw fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) reaches past its end records at ${cdEnd} (truncated or corrupt?)`);
  }
  if (count * CENTRAL_BYTES > cdSize) throw fail(`${count} entries cannot fit a ${cdSize}-byte central directory (corrupt?)`);

  const cd = await readExact(src, cdOffset, cdSize, name);
  const cv = dv(cd);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + CENTRAL_BYTES > cdSize || cv.getUint32(p, true) !== CENTRAL_SIG) {
      throw fail(`bad central directory: entry ${i} at offset ${cdOffset + p} has no central header signature (corrupt?)`);
    }
    const flags = cv.getUint16(p + 8, true);
    const method = cv.getUint16(p + 10, true);
    const crc32 = cv.getUint32(p + 16, true);
    let compressedSize = cv.getUint32(p + 20, true);
    let size = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    const diskStart = cv.getUint16(p + 34, true);
    let localHeaderOffset = cv.getUint32(p + 42, true);
    const next = p + CENTRAL_BYTES + nameLen + extraLen + commentLen;
    if (next > cdSize) throw fail(`bad central directory: entry ${i} runs past its end (corrupt?)`);
    const entryName = decodeName(cd.subarray(p + CENTRAL_BYTES, p + CENTRAL_BYTES + nameLen), (flags & 0x800) !== 0);
    const bad = (msg: string) => fail(`zip entry '${entryName}': ${msg}`);

    // The ZIP64 extra field holds, in order, only the fields whose 32-bit slot is all ones.
    let e = p + CENTRAL_BYTES + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cv.getUint16(e, true);
      const len = cv.getUint16(e + 2, true);
      if (e + 4 + len > extraEnd) throw bad('extra field runs past its end (corrupt?)');
      if (id === 0x0001) {
        let q = e + 4;
        const take = (what: string) => {
          if (q + 8 > e + 4 + len) throw bad(`ZIP64 extra field lacks the ${what}`);
          const v = u64(cv, q, what, name);
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = take('uncompressed size');
        if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('local header offset');
      }
      e += 4 + len;
    }

    if (diskStart !== 0 && diskStart !== 0xffff) throw bad('is on another disk (multi-disk archives are not supported)');
    if (flags & 0x1) throw bad('is encrypted (not supported)');
    if (method !== 0 && method !== 8) throw bad(`uses compression method ${method} (only STORED and DEFLATE are supported)`);
    if (method === 0 && compressedSize !== size) throw bad(`is STORED but its sizes differ (${compressedSize} vs ${size})`);
    if (method === 8 && size > Math.max(compressedSize, 1) * MAX_DEFLATE_RATIO) {
      throw bad(`claims ${size} bytes from ${compressedSize} deflated bytes (corrupt?)`);
    }
    if (localHeaderOffset + LOCAL_BYTES + compressedSize > cdOffset) {
      throw bad(`data at offset ${localHeaderOffset} (${compressedSize} bytes) reaches past the central directory (truncated or corrupt?)`);
    }
    if (entries.has(entryName)) throw bad('appears twice in the central directory');
    entries.set(entryName, { name: entryName, method, compressedSize, size, crc32, localHeaderOffset });
    p = next;
  }
  return { name, entries, zip64 };
}

function decodeName(bytes: Uint8Array, utf8: boolean): string {
  if (utf8) return new TextDecoder('utf-8').decode(bytes);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

function entryOf(zip: ZipArchive, entry: string | ZipEntry): ZipEntry {
  if (typeof entry !== 'string') return entry;
  const e = zip.entries.get(entry);
  if (!e) throw new ReefError(`${zip.name}: zip has no entry '${entry}'`);
  return e;
}

/** Absolute offset of an entry's data, from its local header (whose extra field may differ from the central one). */
export async function zipEntryDataOffset(src: ByteSource, zip: ZipArchive, entry: string | ZipEntry): Promise<number> {
  const e = entryOf(zip, entry);
  const local = dv(await readExact(src, e.localHeaderOffset, LOCAL_BYTES, zip.name));
  if (local.getUint32(0, true) !== LOCAL_SIG) {
    throw new ReefError(`${zip.name}: zip entry '${e.name}': no local header at offset ${e.localHeaderOffset} (corrupt?)`);
  }
  const start = e.localHeaderOffset + LOCAL_BYTES + local.getUint16(26, true) + local.getUint16(28, true);
  if (start + e.compressedSize > src.size) {
    throw new ReefError(`${zip.name}: zip entry '${e.name}': data [${start}, ${start + e.compressedSize}) reaches past the end of the ${src.size}-byte file (truncated?)`);
  }
  return start;
}

/**
 * One entry, extracted, as bytes the caller owns or may view (a STORED entry may be a view the source
 * owns, as `ByteSource.read` allows). The CRC-32 is checked unless `verifyCrc` is false.
 */
export async function readZipEntry(
  src: ByteSource, zip: ZipArchive, entry: string | ZipEntry, opts: { verifyCrc?: boolean } = {},
): Promise<Uint8Array> {
  const e = entryOf(zip, entry);
  const start = await zipEntryDataOffset(src, zip, e);
  const raw = await readExact(src, start, e.compressedSize, zip.name);
  let out: Uint8Array;
  if (e.method === 0) {
    out = raw;
  } else {
    try {
      out = inflateSync(raw, { out: new Uint8Array(e.size) });
    } catch (err) {
      throw new ReefError(`${zip.name}: zip entry '${e.name}': corrupt DEFLATE data (${(err as Error).message})`, { cause: err });
    }
    if (out.byteLength !== e.size) {
      throw new ReefError(`${zip.name}: zip entry '${e.name}': inflated to ${out.byteLength} bytes, but the directory says ${e.size} (corrupt?)`);
    }
  }
  if (opts.verifyCrc !== false && crc32(out) !== e.crc32) {
    throw new ReefError(`${zip.name}: zip entry '${e.name}': CRC-32 mismatch (corrupt file)`);
  }
  return out;
}

/**
 * `length` bytes at `offset` within an entry's extracted data, without a CRC check. A STORED entry
 * reads only that range from the source; a DEFLATE entry is inflated whole first.
 */
export async function readZipEntryRange(
  src: ByteSource, zip: ZipArchive, entry: string | ZipEntry, offset: number, length: number,
): Promise<Uint8Array> {
  const e = entryOf(zip, entry);
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > e.size) {
    throw new ReefError(`${zip.name}: zip entry '${e.name}': read of ${length} bytes at offset ${offset} is outside its ${e.size} bytes`);
  }
  if (e.method !== 0) return (await readZipEntry(src, zip, e, { verifyCrc: false })).subarray(offset, offset + length);
  const start = await zipEntryDataOffset(src, zip, e);
  return readExact(src, start + offset, length, zip.name);
}

