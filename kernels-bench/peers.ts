/**
 * Peer engines (tfjs-backend-webgpu on reef's Dawn, ONNX Runtime's WebGPU EP, ORT's CPU EP as a
 * native reference) as benchmark engines. They live in their own package (kernels-bench/peers) so
 * the root install stays lean; it is installed on first use.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Runtime } from '../src/gpu/runtime.js';
import type { Engine } from './matmul.js';

interface Peer {
  name: string;
  dtypes: ('f32' | 'f16')[];
  info: string;
  matmul(a: Float32Array, b: Float32Array, M: number, K: number, N: number, dtype?: 'f32' | 'f16'): Promise<Float32Array>;
  dispose(): Promise<void> | void;
}

interface PeersModule {
  loadPeers(o: { gpu?: unknown; globals?: Record<string, unknown>; include?: string[] }): Promise<{ peers: Peer[]; skipped: { name: string; reason: string }[] }>;
}

export interface LoadedPeers {
  engines: Engine[];
  notes: string[];
  dispose(): Promise<void>;
}

export async function loadPeerEngines(rt: Runtime, root: string, include: string[], log: (s: string) => void): Promise<LoadedPeers> {
  const dir = join(root, 'kernels-bench', 'peers');
  if (!existsSync(join(dir, 'node_modules', '.reef-peers-installed'))) {
    log('installing the peer engines (tfjs-backend-webgpu, onnxruntime-node) into kernels-bench/peers …');
    try {
      execFileSync('bash', [join(dir, 'install.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
    } catch (e) {
      // Without the peers the benchmark still measures reef against its naive kernel.
      const why = `peer engines could not be installed (${(e as Error).message.split('\n')[0]}); timing reef alone`;
      log(why);
      return { engines: [], notes: [why], dispose: async () => undefined };
    }
  }
  const mod = (await import(pathToFileURL(join(dir, 'index.mjs')).href)) as PeersModule;
  let globals: Record<string, unknown> | undefined;
  if (rt.host.name === 'node') globals = ((await import('webgpu')) as unknown as { globals: Record<string, unknown> }).globals;
  const { peers, skipped } = await mod.loadPeers({ gpu: await rt.host.gpu(), globals, include });
  const notes = [...peers.map((p) => `${p.name}: ${p.info}`), ...skipped.map((s) => `${s.name} skipped: ${s.reason}`)];
  const engines: Engine[] = [];
  for (const p of peers) {
    for (const dtype of p.dtypes) {
      engines.push({
        name: `${p.name}${dtype === 'f16' ? ' f16' : ''}`,
        kind: p.name.endsWith('-cpu') ? 'reference' : 'peer',
        dtype,
        run: (a, b, s) => p.matmul(a, b, s.M, s.K, s.N, dtype),
      });
    }
  }
  return {
    engines,
    notes,
    async dispose() {
      for (const p of peers) await p.dispose();
    },
  };
}
