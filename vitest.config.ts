import { defineConfig } from 'vitest/config';
import { wgslText } from './scripts/wgsl-plugin.js';

export default defineConfig({
  plugins: [wgslText()],
  test: {
    include: ['test/**/*.test.ts'],
    // dawn.node crashes inside worker threads; one forked process keeps one GPU device for the suite.
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    isolate: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
