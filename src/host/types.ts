/** What reef needs from the program hosting it (Node, Deno or a browser page). */
export interface Host {
  readonly name: 'node' | 'deno' | 'browser';
  /** The WebGPU entry point: `navigator.gpu`, or Dawn's GPU object under Node. */
  gpu(): Promise<GPU>;
  /** Awaits a promise that settles when the GPU finishes (mapAsync, onSubmittedWorkDone). */
  waitForGpu<T>(work: Promise<T>): Promise<T>;
  /** An environment variable, where the host has them. */
  env(name: string): string | undefined;
}
