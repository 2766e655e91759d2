/** NIfTI files under Node; the decoding itself is host-agnostic (nifti.ts). */
import { readFile } from 'node:fs/promises';
import { decodeNifti, NiftiError, type Volume } from './nifti.js';

/** Reads a `.nii` or `.nii.gz` whole (gzip can't be read piecewise) and decodes it; errors name `path`. */
export async function loadNifti(path: string): Promise<Volume> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new NiftiError(`${path}: cannot read (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  return decodeNifti(bytes, path);
}
