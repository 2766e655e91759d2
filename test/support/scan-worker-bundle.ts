/**
 * The loader's worker entry bundled as scripts/build.mjs ships it, into a fresh folder inside the
 * checkout's node_modules (so that it finds its npm dependencies). Tests wrap it to make it crash.
 */
import { mkdtemp } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const root = resolve(__dirname, '../..');

/** Builds the worker; returns its folder (the caller removes it) and the script's URL. */
export async function bundleScanWorker(): Promise<{ dir: string; worker: URL }> {
  const dir = await mkdtemp(join(root, 'node_modules', '.reef-test-'));
  const out = join(dir, 'scan-worker.mjs');
  await build({ entryPoints: [join(root, 'src/train/scan-worker.ts')], bundle: true, format: 'esm', platform: 'node', target: 'node20', packages: 'external', outfile: out, logLevel: 'warning' });
  return { dir, worker: pathToFileURL(out) };
}
