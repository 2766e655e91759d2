/**
 * One scan from disk to a crop source (Node): a NIfTI file or a DICOM series folder is read,
 * resampled to the training spacing and its body indexed; `phantom:N` names a generated phantom
 * (seed N, a little larger than the crop). With a cache folder the resampled scan is kept on disk
 * (prepared-cache.ts) and read from there next time.
 * Every check that can refuse a scan happens here, so a loader finds bad files in one place.
 */
import { stat } from 'node:fs/promises';
import { checkCropFits, prepareCropSource, type CropSource } from './crops.js';
import { loadDicomSeries } from './dicom-folder.js';
import { DataError } from './errors.js';
import { loadNifti } from './nifti-file.js';
import type { Volume } from './nifti.js';
import { makePhantom } from './phantom.js';
import { preparedCacheFile, readPrepared, writePrepared } from './prepared-cache.js';
import { DEFAULT_SPACING_MM, resampleVolume } from './resample.js';

export interface ScanPrepareOptions {
  /** The largest crop side the scan must hold (after resampling). */
  minSide: number;
  /** Keep resampled scans in this folder and read them from there (default: resample each time). */
  cacheDir?: string;
}

/** A NIfTI file, or a folder holding one DICOM series (its unusable files are reported, not fatal). */
export async function loadScan(path: string, log: (line: string) => void = () => {}): Promise<Volume> {
  let folder: boolean;
  try {
    folder = (await stat(path)).isDirectory();
  } catch (e) {
    throw new DataError(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  return folder ? loadDicomSeries(path, log) : loadNifti(path);
}

/** Why a listed scan can no longer be read (its file or folder is gone), or null if it is there; cheap, reads nothing. */
export async function scanMissing(path: string): Promise<string | null> {
  if (path.startsWith('phantom:')) return null;
  try {
    const st = await stat(path);
    return st.isFile() || st.isDirectory() ? null : 'not a file or folder';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

/** Load, resample, index and check one scan; errors name it. */
export async function prepareScan(path: string, o: ScanPrepareOptions, log: (line: string) => void = () => {}): Promise<CropSource> {
  const spacing = [DEFAULT_SPACING_MM, DEFAULT_SPACING_MM, DEFAULT_SPACING_MM];
  const phantom = path.startsWith('phantom:');
  const fresh = async () =>
    resampleVolume(phantom ? makePhantom({ shape: [o.minSide + 24, o.minSide + 24, o.minSide + 16], spacing: [1.5, 1.5, 1.5], seed: Number(path.slice(8)) }) : await loadScan(path, log), spacing);
  let resampled: Volume;
  if (o.cacheDir && !phantom) {
    const file = await preparedCacheFile(o.cacheDir, path, spacing).catch(() => null); // unreadable source: loadScan says why
    const cached = file ? await readPrepared(file, path) : null;
    resampled = cached ?? (await fresh());
    if (!cached && file) {
      // A full disk costs speed next time, not this run.
      await writePrepared(file, resampled, path).catch((e: unknown) => log(`${path}: resampled scan not cached in ${o.cacheDir} (${e instanceof Error ? e.message : String(e)})`));
    }
  } else {
    resampled = await fresh();
  }
  const src = prepareCropSource(resampled); // refuses NaN/infinite values and scans with no body, naming the file
  checkCropFits(src.volume, o.minSide);
  return src;
}
