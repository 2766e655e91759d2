// The browser page: `npm run web [-- --port N] [--no-build]` bundles web/ with esbuild into
// dist/web/ (reef, its shaders as text, niivue and everything else inlined: no CDN, works offline)
// and serves that folder on 127.0.0.1. 127.0.0.1 counts as a secure context, which WebGPU needs.
// buildWeb and serveWeb are exported for the browser test.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const WEB_OUT = join(root, 'dist/web');

/** Bundles web/main.ts and copies the static files; returns the output folder. */
export async function buildWeb({ outdir = WEB_OUT, minify = false } = {}) {
  mkdirSync(outdir, { recursive: true });
  await build({
    absWorkingDir: root,
    entryPoints: ['web/main.ts'],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    loader: { '.wgsl': 'text' },
    // Only the Node host imports Dawn, lazily; the page never reaches that import.
    external: ['webgpu'],
    sourcemap: true,
    minify,
    logLevel: 'warning',
    outfile: join(outdir, 'main.js'),
  });
  for (const f of ['index.html', 'style.css']) copyFileSync(join(root, 'web', f), join(outdir, f));
  return outdir;
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/**
 * A static file server for `dir` on host:port (port 0 picks a free one). Resolves once listening,
 * with the URL and a close() that also drops open keep-alive connections.
 */
export async function serveWeb({ dir = WEB_OUT, port = 8173, host = '127.0.0.1' } = {}) {
  const base = resolve(dir);
  const server = createServer(async (req, res) => {
    try {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      let file = normalize(join(base, path));
      if (file !== base && !file.startsWith(base + sep)) {
        res.writeHead(403).end('forbidden');
        return;
      }
      if ((await stat(file).catch(() => null))?.isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store', 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => ok(undefined));
  });
  const addr = server.address();
  const url = `http://${host}:${typeof addr === 'object' && addr ? addr.port : port}/`;
  return {
    server,
    url,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections?.();
        server.close(() => ok(undefined));
      }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '8173' }, 'no-build': { type: 'boolean', default: false }, minify: { type: 'boolean', default: false } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port ${values.port}: expected 0…65535`);
    process.exit(2);
  }
  if (!values['no-build']) {
    const t = performance.now();
    await buildWeb({ minify: values.minify });
    console.log(`built ${WEB_OUT} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  const { url } = await serveWeb({ port });
  console.log(`reef page: ${url}  (Ctrl-C stops)`);
}

/**
 * --enable-unsafe-webgpu: WebGPU on Linux (SwiftShader's Vulkan here). --enable-unsafe-swiftshader:
 * software WebGL2 for niivue, which Chromium otherwise only falls back to with a deprecation
 * warning. The background-networking group: this machine refuses Chromium's own connections.
 */
export const CHROMIUM_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-unsafe-swiftshader',
  '--disable-gpu-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--window-size=1400,1000',
];
