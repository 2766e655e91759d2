/**
 * The real sample CT for demos (Node only): Debian bookworm's `invesalius-examples` holds
 * InVesalius' Cranium.inv3, a head CT in HU (256×256×108 at 0.957×0.957×1.5 mm, GPL-2). The first
 * call runs `apt-get download invesalius-examples`, pulls the .inv3 out of the package, converts it
 * to an int16 NIfTI-1 (.nii.gz) and caches that; later calls read the cache. Tests never use this.
 *
 * Cache directory: $REEF_CACHE, else $XDG_CACHE_HOME/reef, else ~/.cache/reef.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Volume } from './nifti.js';
import { loadNifti } from './nifti-file.js';
import { encodeNifti1 } from './nifti-write.js';
import { extractDebMember, runCommand } from './deb.js';
import { DataError } from './errors.js';
import { decodeInv3 } from './inv3.js';

export const SAMPLE_CT = {
  debianPackage: 'invesalius-examples',
  member: 'usr/share/doc/invesalius-examples/examples/Cranium.inv3',
  fileName: 'invesalius-cranium.nii.gz',
} as const;

export interface SampleCtOptions {
  cacheDir?: string;
  /** An already downloaded invesalius-examples .deb (skips apt-get). */
  debPath?: string;
  log?: (line: string) => void;
}

export function reefCacheDir(): string {
  const env = process.env;
  if (env['REEF_CACHE']) return env['REEF_CACHE'];
  if (env['XDG_CACHE_HOME']) return join(env['XDG_CACHE_HOME'], 'reef');
  return join(homedir(), '.cache', 'reef');
}

/** An .inv3 project as an int16 NIfTI-1 (.nii.gz) with the volume's spacing. */
export function inv3ToNifti(inv3: Uint8Array, name: string): Uint8Array {
  const { volume, meta } = decodeInv3(inv3, name);
  const description = `from ${name}${meta.name ? ` (${meta.name})` : ''}`;
  return encodeNifti1(volume, { dtype: 'int16', gzip: true, description });
}

/** Path of the cached sample NIfTI, fetching and converting it first if needed. */
export async function sampleCtPath(opts: SampleCtOptions = {}): Promise<string> {
  const dir = opts.cacheDir ?? reefCacheDir();
  const target = join(dir, SAMPLE_CT.fileName);
  if (existsSync(target)) return target;
  const log = opts.log ?? (() => {});
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(dir, 'fetch-'));
  try {
    let deb = opts.debPath;
    if (!deb) {
      log(`downloading the Debian package ${SAMPLE_CT.debianPackage} (about 19 MB) with apt-get…`);
      try {
        await runCommand('apt-get', ['download', SAMPLE_CT.debianPackage], { cwd: work });
      } catch (e) {
        throw new DataError(
          `could not download ${SAMPLE_CT.debianPackage}: ${e instanceof Error ? e.message : String(e)}. ` +
            'This needs a Debian/Ubuntu host whose apt sources carry the package (try `apt-get update`), ' +
            'or pass debPath to a downloaded .deb.',
          { cause: e },
        );
      }
      const found = (await readdir(work)).filter((f) => f.endsWith('.deb'));
      if (found.length !== 1) throw new DataError(`apt-get download left ${found.length} .deb files in ${work}`);
      deb = join(work, found[0]!);
    }
    log(`extracting ${SAMPLE_CT.member}…`);
    const inv3 = await extractDebMember(deb, SAMPLE_CT.member);
    const nii = inv3ToNifti(inv3, 'Cranium.inv3');
    const tmp = join(work, SAMPLE_CT.fileName);
    await writeFile(tmp, nii);
    await rename(tmp, target); // atomic: a reader never sees half a file
    log(`cached ${target}`);
    return target;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export async function loadSampleCt(opts: SampleCtOptions = {}): Promise<Volume> {
  return loadNifti(await sampleCtPath(opts));
}
