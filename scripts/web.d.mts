// Types for scripts/web.mjs, for the TypeScript code (the browser test) that imports it.
export declare const WEB_OUT: string;
export declare function buildWeb(options?: { outdir?: string; minify?: boolean }): Promise<string>;
export declare function serveWeb(options?: { dir?: string; port?: number; host?: string }): Promise<{
  server: import('node:http').Server;
  url: string;
  close(): Promise<void>;
}>;
/** Flags for headless Chromium with WebGPU (SwiftShader) and WebGL2 on this kind of machine. */
export declare const CHROMIUM_FLAGS: string[];
