/**
 * A read-only tar reader (ustar, with GNU long names and pax `path`/`size` records): enough for
 * InVesalius projects and Debian package data. Entries are views into the input, not copies.
 * Every header checksum and size is checked against the buffer, so a truncated archive is an error.
 */
import { DataError } from './errors.js';

export interface TarEntry {
  /** Path as stored, without a leading "./". */
  name: string;
  /** '0' file, '5' directory, '2' symlink, ... (NUL is read as '0'). */
  type: string;
  data: Uint8Array;
}

const BLOCK = 512;

function cstr(b: Uint8Array, at: number, len: number): string {
  let end = at;
  while (end < at + len && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(at, end));
}

/** Octal field (NUL/space terminated), or GNU base-256 when the top bit is set. */
function numField(b: Uint8Array, at: number, len: number): number {
  if (b[at]! & 0x80) {
    let v = b[at]! & 0x7f;
    for (let i = at + 1; i < at + len; i++) v = v * 256 + b[i]!;
    return v;
  }
  const s = cstr(b, at, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) return NaN;
  return parseInt(s, 8);
}

function isZeroBlock(b: Uint8Array, at: number): boolean {
  for (let i = at; i < at + BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

function stripDot(p: string): string {
  return p.startsWith('./') ? p.slice(2) : p;
}

/** Pax extended header records: "len key=value\n". */
function paxRecords(data: Uint8Array, name: string): Map<string, string> {
  const text = new TextDecoder().decode(data);
  const out = new Map<string, string>();
  let p = 0;
  while (p < text.length) {
    const sp = text.indexOf(' ', p);
    const len = parseInt(text.slice(p, sp), 10);
    if (sp < 0 || !(len > 0)) throw new DataError(`${name}: corrupt tar: bad pax header record`);
    const rec = text.slice(sp + 1, p + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    p += len;
  }
  return out;
}

/** All entries of an uncompressed tar; `name` is used in every error. */
export function readTar(bytes: Uint8Array, name: string): TarEntry[] {
  const entries: TarEntry[] = [];
  let p = 0;
  let longName: string | undefined;
  let pax = new Map<string, string>();
  while (true) {
    if (p + BLOCK > bytes.length) {
      // Archives should end in two zero blocks; stopping cleanly at a block boundary is tolerated (as GNU tar does).
      if (p === bytes.length) break;
      throw new DataError(`${name}: truncated tar: header at byte ${p} runs past the end (${bytes.length} bytes)`);
    }
    if (isZeroBlock(bytes, p)) break;
    const sum = numField(bytes, p + 148, 8);
    let calc = 0;
    for (let i = 0; i < BLOCK; i++) calc += i >= 148 && i < 156 ? 0x20 : bytes[p + i]!;
    if (sum !== calc) throw new DataError(`${name}: corrupt tar: header checksum mismatch at byte ${p} (not a tar, or damaged)`);
    const typeByte = bytes[p + 156]!;
    const type = typeByte === 0 ? '0' : String.fromCharCode(typeByte);
    let size = numField(bytes, p + 124, 12);
    if (pax.has('size')) size = Number(pax.get('size'));
    if (!Number.isSafeInteger(size) || size < 0) throw new DataError(`${name}: corrupt tar: bad size field at byte ${p}`);
    const start = p + BLOCK;
    if (start + size > bytes.length) {
      throw new DataError(`${name}: truncated tar: member at byte ${p} needs ${size} bytes, only ${bytes.length - start} left`);
    }
    const data = bytes.subarray(start, start + size);
    p = start + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'L') {
      longName = cstr(data, 0, data.length);
      continue;
    }
    if (type === 'x') {
      pax = paxRecords(data, name);
      continue;
    }
    if (type === 'g') continue; // global pax header: nothing we use
    let path = longName ?? pax.get('path');
    if (path === undefined) {
      const hdr = start - BLOCK;
      path = cstr(bytes, hdr, 100);
      // POSIX ustar ("ustar\0") has a name prefix at 345; old GNU ("ustar  ") keeps times there.
      const posix = cstr(bytes, hdr + 257, 6) === 'ustar' && bytes[hdr + 262] === 0;
      const prefix = posix ? cstr(bytes, hdr + 345, 155) : '';
      if (prefix) path = `${prefix}/${path}`;
    }
    longName = undefined;
    pax = new Map();
    entries.push({ name: stripDot(path), type, data });
  }
  return entries;
}
