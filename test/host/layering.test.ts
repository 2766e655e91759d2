/**
 * One library, three hosts: Node-only APIs (node: modules, process, Buffer, require) appear only in
 * the Node layer listed here, and the browser bundle of src/index.ts reaches none of that layer but
 * the Node host itself (loaded lazily, only under Node), imports nothing but Dawn (dynamically),
 * inlines every shader and never fetches.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '../..');

/** Files that may use Node: the host adapter, file I/O, the CLI, and the data readers of files on disk. */
const NODE_LAYER = [
  /^src\/cli\//,
  /^src\/host\/node\.ts$/,
  /^src\/io\/node-file\.ts$/,
  /^src\/io\/run-dir\.ts$/,
  /^src\/data\/(nifti-file|dicom-folder|deb|sample-ct|scan-file|prepared-cache)\.ts$/,
  /^src\/train\/(scan-worker|scan-workers)\.ts$/,
];
const inNodeLayer = (f: string) => NODE_LAYER.some((re) => re.test(f));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Code without comments and string contents, so prose that names Buffer or process does not count. */
function codeOnly(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:])\/\/.*$/gm, '$1')
    .replace(/`(?:\\.|[^`\\])*`/g, '``')
    .replace(/'(?:\\.|[^'\\\n])*'/g, (s) => (s.startsWith("'node:") ? s : "''"));
}

const NODE_USE = /from\s+'node:|import\(\s*'node:|\bprocess\.|\bBuffer\b|\brequire\(/;

describe('host layering', () => {
  it('Node-only APIs appear only in the Node layer', () => {
    const offenders: string[] = [];
    let nodeFiles = 0;
    for (const path of sources(join(root, 'src'))) {
      const file = relative(root, path).split('\\').join('/');
      const uses = NODE_USE.test(codeOnly(readFileSync(path, 'utf8')));
      if (inNodeLayer(file)) nodeFiles += uses ? 1 : 0;
      else if (uses) offenders.push(file);
    }
    expect(offenders, `Node-only APIs outside the Node layer: ${offenders.join(', ')}`).toEqual([]);
    expect(nodeFiles).toBeGreaterThan(5); // the scan sees the layer's own imports
  });

  it('the browser bundle holds no Node layer but the lazy Node host, every shader inline, no fetch', async () => {
    const result = await build({
      entryPoints: [join(root, 'src/index.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      external: ['webgpu'],
      loader: { '.wgsl': 'text' },
      write: false,
      metafile: true,
      logLevel: 'silent',
      absWorkingDir: root,
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((f) => inNodeLayer(f) && f !== 'src/host/node.ts')).toEqual([]);
    const shaders = readdirSync(join(root, 'shaders')).filter((f) => f.endsWith('.wgsl'));
    const bundled = new Set(inputs.filter((f) => f.startsWith('shaders/')).map((f) => f.slice('shaders/'.length)));
    // Every shader the ops use is inside (the peak-measuring ones belong to kernels-bench).
    expect(shaders.filter((s) => !bundled.has(s) && !s.startsWith('peak_'))).toEqual([]);
    const [output] = Object.values(result.metafile.outputs);
    expect(output!.imports.map((i) => `${i.path} ${i.kind}`)).toEqual(['webgpu dynamic-import']);
    const text = result.outputFiles[0]!.text;
    expect(text).not.toMatch(/\bfetch\(/);
  });
});
