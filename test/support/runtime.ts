/**
 * One runtime for the whole test process. dawn.node must keep its GPU object alive for the life of
 * the process, and device creation is the slow part, so every test file shares this one.
 */
import { Runtime } from '../../src/gpu/runtime.js';

let shared: Promise<Runtime> | null = null;

export function testRuntime(): Promise<Runtime> {
  shared ??= Runtime.create({ maxBatch: 64 });
  return shared;
}
