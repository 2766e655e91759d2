/**
 * DICOM series folders under Node (one series per folder); the decoding itself is host-agnostic
 * (dicom.ts). A folder's files may have any name: DICOM files often have no extension, so every
 * regular file is sniffed for the 'DICM' magic instead.
 */
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { assembleSeries, decodeDicomSlice, DicomError, hasDicomMagic, type DicomSlice } from './dicom.js';
import type { Volume } from './nifti.js';

/** True when `dir` holds at least one file with the DICOM magic (DICOMDIR index files aside). */
export async function isDicomFolder(dir: string): Promise<boolean> {
  let files: string[];
  try {
    files = await regularFiles(dir);
  } catch {
    return false; // not a folder, or unreadable: not a series either way
  }
  for (const f of files) {
    if (isDicomDir(f)) continue;
    if ((await readIfDicom(join(dir, f), 132).catch(() => null)) !== null) return true;
  }
  return false;
}

/**
 * Reads the one series in `dir` as a Volume named `dir`. Files that are not DICOM, or that fail to
 * decode (truncated, compressed, no geometry...), are reported through `log` and skipped, so one bad
 * file never costs the series; a folder holding several series, or fewer than 2 usable slices, is an
 * error naming the folder.
 */
export async function loadDicomSeries(dir: string, log: (line: string) => void = () => {}): Promise<Volume> {
  let files: string[];
  try {
    files = await regularFiles(dir);
  } catch (e) {
    throw new DicomError(`${dir}: cannot list the folder (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  const slices: DicomSlice[] = [];
  let skipped = 0;
  const skip = (path: string, reason: string) => {
    skipped++;
    log(`skipping ${path}: ${reason}`);
  };
  for (const f of files) {
    const path = join(dir, f);
    if (isDicomDir(f)) {
      skip(path, 'a DICOMDIR index, not an image');
      continue;
    }
    let bytes: Uint8Array | null;
    try {
      bytes = await readIfDicom(path);
    } catch (e) {
      skip(path, `cannot read (${e instanceof Error ? e.message : String(e)})`);
      continue;
    }
    if (bytes === null) {
      skip(path, 'not a DICOM file');
      continue;
    }
    try {
      slices.push(decodeDicomSlice(bytes, path));
    } catch (e) {
      // DicomError messages already start with the path.
      if (e instanceof DicomError) {
        skipped++;
        log(`skipping ${e.message}`);
      } else skip(path, e instanceof Error ? e.message : String(e));
    }
  }

  if (slices.length === 0) throw new DicomError(`${dir}: no usable DICOM slices (${skipped} file${skipped === 1 ? '' : 's'} skipped)`);
  const series = new Map<string, number>();
  for (const s of slices) series.set(s.seriesInstanceUid, (series.get(s.seriesInstanceUid) ?? 0) + 1);
  if (series.size > 1) {
    const list = [...series].map(([uid, n]) => `${uid} (${n} slice${n === 1 ? '' : 's'})`).join(', ');
    throw new DicomError(`${dir}: ${series.size} series in one folder: ${list}; reef reads one series per folder, so move each into its own`);
  }
  return assembleSeries(slices, dir);
}

const isDicomDir = (file: string): boolean => file.toUpperCase() === 'DICOMDIR';

/** Names of the regular files in `dir` (symlinks followed), sorted so logs come out in a stable order. */
async function regularFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isFile()) out.push(e.name);
    else if (e.isSymbolicLink() && (await stat(join(dir, e.name)).catch(() => null))?.isFile()) out.push(e.name);
  }
  return out.sort();
}

/**
 * The file's bytes if it starts like a DICOM Part 10 file, else null; looks at the first 132 bytes
 * before reading the rest, so a large stray file in the folder costs one small read. With `limit`,
 * reads at most that many bytes.
 */
async function readIfDicom(path: string, limit = Infinity): Promise<Uint8Array | null> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size < 132) return null;
    const head = new Uint8Array(132);
    if (!hasDicomMagic(head.subarray(0, await readFully(fh, head, 0)))) return null;
    const bytes = new Uint8Array(Math.min(size, limit));
    bytes.set(head);
    // A file that shrank since stat is returned short, so the decoder reports the truncation.
    return bytes.subarray(0, await readFully(fh, bytes, 132));
  } finally {
    await fh.close();
  }
}

/** Fills `into` from file offset `from` on (same offset in both); returns where the data ends. */
async function readFully(fh: Awaited<ReturnType<typeof open>>, into: Uint8Array, from: number): Promise<number> {
  let at = from;
  while (at < into.length) {
    const { bytesRead } = await fh.read(into, at, into.length - at, at);
    if (bytesRead === 0) break;
    at += bytesRead;
  }
  return at;
}
