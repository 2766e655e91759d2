import { it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { randn, matmul } from '../../src/index';
it('probe', async () => {
  const rt = await testRuntime();
  const a = randn(rt, [5, 5]);
  for (const variant of ['naive', 'regblock', 'tiled'] as const) for (const elem of ['f32','f16'] as const) for (const transB of [false, true, false]) {
    const x = elem === 'f16' ? randn(rt, [5,5], {dtype:'f16'}) : a;
    const t0 = performance.now();
    const c = matmul(x, x, { variant, transB });
    await c.read();
    console.log(variant, elem, transB, (performance.now() - t0).toFixed(0), 'ms');
  }
});
