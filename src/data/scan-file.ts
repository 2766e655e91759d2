/**
 * One scan from disk to a crop source (Node): a NIfTI file or a DICOM series folder is read,
 * resampled to the training spacing and its body indexed; `phantom:N` names a generated phantom
 * (seed N, a little larger than the crop).
 * Every check that can refuse a scan happens here, so a loader finds bad files in one place.
 */
import { stat } from 'node:fs/promises';
import { checkCropFits, type CropSource } from './crops.js';
import { loadDicomSeries } from './dicom-folder.js';
import { DataError } from './errors.js';
import { loadNifti } from './nifti-file.js';
import type { Volume } from './nifti.js';
import { makePhantom } from './phantom.js';
import { prepareVolume } from './volume-cache.js';

export interface ScanPrepareOptions {
  /** The largest crop side the scan must hold (after resampling). */
  minSide: number;
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

/** Load, resample, index and check one scan; errors name it. */
export async function prepareScan(path: string, o: ScanPrepareOptions, log: (line: string) => void = () => {}): Promise<CropSource> {
  const volume = path.startsWith('phantom:')
    ? makePhantom({ shape: [o.minSide + 24, o.minSide + 24, o.minSide + 16], spacing: [1.5, 1.5, 1.5], seed: Number(path.slice(8)) })
    : await loadScan(path, log);
  const src = prepareVolume(volume); // refuses NaN/infinite values and scans with no body, naming the file
  checkCropFits(src.volume, o.minSide);
  return src;
}
