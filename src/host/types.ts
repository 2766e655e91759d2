/** What reef needs from the program hosting it (Node, Deno or a browser page). */
export interface Host {
  readonly name: 'node' | 'deno' | 'browser';
  /** The WebGPU entry point: `navigator.gpu`, or Dawn's GPU object under Node. */
  gpu(): Promise<GPU>;
  /** Awaits a promise that settles when the GPU finishes (mapAsync, onSubmittedWorkDone). */
  waitForGpu<T>(work: Promise<T>): Promise<T>;
  /** An environment variable, where the host has them. */
  env(name: string): string | undefined;
  /**
   * The native API under WebGPU, as far as this host can tell (WebGPU does not report it):
   * e.g. 'vulkan', or 'gl (fallback…)' when Deno's wgpu found no Vulkan driver.
   */
  backend(features: ReadonlySet<string>): string;
}
