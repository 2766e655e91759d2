/** A module owns parameters (leaf tensors with requiresGrad) and maps tensors to tensors. */
import type { Tensor } from '../tensor/tensor.js';

export abstract class Module {
  /** Parameters by dotted name, in a stable order. */
  abstract namedParameters(): [string, Tensor][];

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  dispose(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
      p.dispose();
    }
  }
}

export function prefixed(prefix: string, m: Module): [string, Tensor][] {
  return m.namedParameters().map(([n, p]) => [`${prefix}.${n}`, p]);
}
