/**
 * Resampled scans kept on disk (Node), so that a scan is resampled once, not once per pass through a
 * folder larger than the memory budget, nor again on each --resume. An entry is named by a hash of
 * the source (path, size and modification time of the file, or of every file of a DICOM folder) and
 * the target spacing, so an edited scan is resampled afresh. Its format is exact: a JSON header
 * (shape, spacing and affine as JSON numbers; JSON has no −0, harmless as crops never read the
 * affine) and the f32 voxels as they were computed, so a cached scan gives bitwise the crops of a
 * freshly resampled one. Entries are written to a temporary name, synced and renamed into place; an
 * entry that cannot be read is a miss (rewritten), never an error.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Volume } from './nifti.js';

const MAGIC = 'REEF-PREPARED-1\n';
/** Part of every key: raise it when reading or resampling changes, so that old entries miss. */
const PREPARE_VERSION = 1;

interface Header {
  shape: [number, number, number];
  spacing: [number, number, number];
  affine: number[];
  dtype: string;
  source: string;
}

/** What identifies a scan's contents without reading them: its files' sizes and modification times. */
async function sourceStamp(path: string): Promise<string> {
  // ctime and inode too: a copy that keeps the old mtime (cp -p, rsync -a) still changes them.
  const one = (f: { size: number; mtimeMs: number; ctimeMs: number; ino: number }) => `${f.size}:${f.mtimeMs}:${f.ctimeMs}:${f.ino}`;
  const info = await stat(path);
  if (!info.isDirectory()) return one(info);
  const parts: string[] = [];
  for (const name of (await readdir(path)).sort()) {
    const f = await stat(join(path, name));
    if (f.isFile()) parts.push(`${name}:${one(f)}`);
  }
  return parts.join('|');
}

/** The cache file for `path` resampled to `spacing` mm. */
export async function preparedCacheFile(dir: string, path: string, spacing: readonly number[]): Promise<string> {
  const key = JSON.stringify({ path, stamp: await sourceStamp(path), spacing, version: PREPARE_VERSION });
  return join(dir, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.prepared`);
}

/** The cached resampled volume, or null when there is none or it cannot be read. */
export async function readPrepared(file: string, name: string): Promise<Volume | null> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch {
    return null;
  }
  try {
    const size = (await handle.stat()).size;
    // Header first, then the voxels straight into the volume's own array: one copy of a scan in
    // memory, not the file's bytes and a copy beside them.
    const lead = await readExactly(handle, Buffer.alloc(MAGIC.length + 4), 0);
    if (!lead || lead.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) return null;
    const headerLength = lead.readUInt32LE(MAGIC.length);
    const start = lead.length;
    if (start + headerLength > size) return null;
    const json = await readExactly(handle, Buffer.alloc(headerLength), start);
    if (!json) return null;
    const h = JSON.parse(json.toString('utf8')) as Header;
    const dataStart = start + headerLength;
    const count = h.shape[0] * h.shape[1] * h.shape[2];
    if (!Number.isSafeInteger(count) || count < 0 || dataStart % 4 !== 0 || size !== dataStart + count * 4) return null;
    const data = new Float32Array(count);
    if (!(await readExactly(handle, new Uint8Array(data.buffer), dataStart))) return null;
    return { data, shape: h.shape, spacing: h.spacing, affine: h.affine, dtype: h.dtype, name };
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}

/** Fills `into` from `position` on (in pieces: one read takes at most 2 GiB); null if the file ends first. */
async function readExactly<T extends Uint8Array>(handle: FileHandle, into: T, position: number): Promise<T | null> {
  for (let done = 0; done < into.length; ) {
    const { bytesRead } = await handle.read(into, done, Math.min(into.length - done, 2 ** 30), position + done);
    if (bytesRead === 0) return null;
    done += bytesRead;
  }
  return into;
}

/** Writes the entry under a temporary name and renames it into place (a reader never sees half of one). */
export async function writePrepared(file: string, vol: Volume, source: string): Promise<void> {
  const header: Header = { shape: vol.shape, spacing: vol.spacing, affine: vol.affine, dtype: vol.dtype, source };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad the header with spaces so that the voxels start 4-byte aligned.
  const pad = (4 - ((MAGIC.length + 4 + json.length) % 4)) % 4;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.length);
  // A unique temporary name: worker threads share the process id.
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await mkdir(join(file, '..'), { recursive: true });
  try {
    const handle = await open(tmp, 'w');
    try {
      await handle.writev([Buffer.from(MAGIC, 'latin1'), length, json, Buffer.from(vol.data.buffer, vol.data.byteOffset, vol.data.byteLength)]);
      await handle.sync(); // the length check on reading cannot see voxels lost to a crash
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
