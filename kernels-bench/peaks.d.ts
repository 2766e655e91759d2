import type { Runtime } from '../src/gpu/runtime.js';
export interface Peaks {
    fmaGflops: number;
    copyGBs: number;
    detail: string;
}
export declare function measurePeaks(rt: Runtime): Promise<Peaks>;
