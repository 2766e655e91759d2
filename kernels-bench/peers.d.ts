import type { Runtime } from '../src/gpu/runtime.js';
import type { Engine } from './matmul.js';
export interface LoadedPeers {
    engines: Engine[];
    notes: string[];
    dispose(): Promise<void>;
}
export declare function loadPeerEngines(rt: Runtime, root: string, include: string[], log: (s: string) => void): Promise<LoadedPeers>;
