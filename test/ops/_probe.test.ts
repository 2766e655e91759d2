import { it } from 'vitest';
import { testRuntime } from '../support/runtime';
import { tensor, matmul } from '../../src/index';
it('probe', async () => {
  const rt = await testRuntime();
  console.log(rt.describe(), JSON.stringify(rt.caps));
  const a = tensor(rt, [1, 2, 3, 4], [2, 2]);
  const c = matmul(a, a);
  console.log(await c.read());
});
