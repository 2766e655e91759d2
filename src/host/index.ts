/** Picks the host reef runs in. Node-only code is loaded lazily so bundles for other hosts skip it. */
import type { Host } from './types.js';
import { webHost } from './web.js';

export type { Host } from './types.js';

export async function detectHost(): Promise<Host> {
  const g = globalThis as { Deno?: unknown; process?: { versions?: { node?: string } } };
  if (g.Deno !== undefined) return webHost();
  if (g.process?.versions?.node !== undefined) {
    const { nodeHost } = await import('./node.js');
    return nodeHost();
  }
  return webHost();
}
