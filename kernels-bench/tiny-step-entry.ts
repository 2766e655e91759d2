/** What kernels-bench/tiny-step-ab.mjs needs from one tree: its runtime and the tiny-step trainer. */
export { Runtime } from '../src/gpu/runtime.js';
export { profileTinyStep, tinyStepper } from './tiny-step.js';
